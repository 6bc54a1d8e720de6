"""Garbage of many kinds at every endpoint that takes a body: never a 5xx.

Hypothesis generates JSON of any shape, FHIR-looking resources with wrong or random fields,
Parameters with random parameters, Bundles of random entries, raw bytes and odd media types;
JSON whose strings (keys and values) are any Unicode text or hold lone surrogate escapes
(``"\\udc80"``: valid JSON syntax that stands for no character), anywhere in otherwise valid
requests (ids, ``hook``, ``resourceType``, card ids...); odd paths, queries and JWT claims.
Whatever arrives, the answer is a 2xx or a 4xx with an OperationOutcome.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from fhir_cml import create_app
from fhir_cml.web import assessment
from fhir_cml.web.runtime import runtime
from tests.support.cds import SigningEhr, example_resources, hook_request, patient_view

from .conftest import PUBLIC

ISS = "https://ehr.example.org"
SIGNER = SigningEhr.make(ISS)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
any_json = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=25,
)
TYPES = [
    "Patient",
    "Observation",
    "Condition",
    "MedicationStatement",
    "Medication",
    "AdverseEvent",
    "Bundle",
    "Parameters",
    "OperationOutcome",
    "MedicationRequest",
]
LOINC = ["69380-4", "55147-3", "50195-7", "103609-4", "69548-6", "6690-2", "777-3", "21795-0"]
dates = st.sampled_from(
    ["2025-06-30", "2024-01", "2025", "not a date", "2030-01-01", ""]
) | st.dates(min_value=date(1900, 1, 1), max_value=date(2100, 1, 1)).map(date.isoformat)
quantities = st.fixed_dictionaries(
    {},
    optional={
        "value": scalars,
        "unit": st.sampled_from(["%", "mg", "ng/mL", "1", "{copies}", "tablet", "x"]),
        "code": st.sampled_from(["%", "mg", "ng/mL", "1", "{copies}", "tablet"]),
        "system": st.just("http://unitsofmeasure.org"),
        "comparator": st.sampled_from(["<", ">", "<=", "x"]),
    },
)
codings = st.fixed_dictionaries(
    {},
    optional={
        "coding": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "system": st.sampled_from(
                        [
                            "http://loinc.org",
                            "http://snomed.info/sct",
                            "http://www.nlm.nih.gov/research/umls/rxnorm",
                            "http://www.whocc.no/atc",
                        ]
                    ),
                    "code": st.sampled_from([*LOINC, "92818009", "282388", "L01EA01", "J01FA09"])
                    | st.text(max_size=8),
                },
            ),
            max_size=3,
        ),
        "text": st.text(max_size=20),
    },
)
fhirish = st.fixed_dictionaries(
    {"resourceType": st.sampled_from(TYPES)},
    optional={
        "id": st.text(max_size=10) | st.integers(),
        "status": st.sampled_from(["final", "amended", "active", "draft", "x"]) | any_json,
        "subject": st.fixed_dictionaries(
            {},
            optional={
                "reference": st.sampled_from(["Patient/p1", "Patient/p2", "Group/g"]) | any_json
            },
        ),
        "code": codings | any_json,
        "medicationCodeableConcept": codings,
        "effectiveDateTime": dates | any_json,
        "effectivePeriod": st.fixed_dictionaries({}, optional={"start": dates, "end": dates}),
        "valueQuantity": quantities | any_json,
        "component": st.lists(
            st.fixed_dictionaries({}, optional={"code": codings, "valueQuantity": quantities}),
            max_size=3,
        ),
        "dosage": any_json,
        "birthDate": dates,
        "entry": st.lists(any_json, max_size=3),
        "parameter": any_json,
    },
)
bundles = st.fixed_dictionaries(
    {
        "resourceType": st.just("Bundle"),
        "entry": st.lists(
            st.fixed_dictionaries(
                {}, optional={"resource": fhirish | any_json, "fullUrl": scalars}
            ),
            max_size=6,
        ),
    },
    optional={"type": st.sampled_from(["collection", "transaction", "searchset", "x"])},
)
parameter = st.fixed_dictionaries(
    {},
    optional={
        "name": st.sampled_from(["resource", "asOf", "guideline", "writeBack", "other"]) | scalars,
        "resource": fhirish | bundles | any_json,
        "valueDate": dates | any_json,
        "valueCode": st.sampled_from(["eln2020", "eln2013", "eln2009", "x"]) | any_json,
        "valueBoolean": any_json,
    },
)
parameters = st.fixed_dictionaries(
    {"resourceType": st.just("Parameters")},
    optional={"parameter": st.lists(parameter, max_size=5) | any_json},
)
bodies = any_json | fhirish | bundles | parameters
EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.json"))


@st.composite
def damaged_examples(draw: st.DrawFn) -> dict[str, Any]:
    """An example patient's Bundle with a few elements replaced by garbage: the data reach the
    mapper and the rules, which must cope with whatever is left."""
    bundle = json.loads(draw(st.sampled_from(EXAMPLES)).read_text())
    entries = bundle["entry"]
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        resource = entries[draw(st.integers(min_value=0, max_value=len(entries) - 1))]["resource"]
        keys = sorted(k for k in resource if k not in ("resourceType", "id", "subject"))
        key = draw(st.sampled_from(keys) | st.text(max_size=8)) if keys else "extra"
        resource[key] = draw(any_json | quantities | codings | dates)
    return dict(bundle)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    state = tmp_path_factory.mktemp("fuzz") / "state.sqlite3"
    made = create_app(
        {
            "public_base_url": PUBLIC,
            "state": str(state),
            "max_content_length": 200_000,
            "cds_issuers": [{"iss": ISS, "jwks": SIGNER.jwks}],
            "api_issuers": [{"iss": ISS, "jwks": SIGNER.jwks}],
        }
    )
    yield made
    with made.app_context():
        runtime().close()


@pytest.fixture(scope="module")
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture(autouse=True)
def _as_of(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(assessment, "today", lambda: date(2025, 6, 30))


def answered(response: Any) -> None:
    """A 2xx, or a 4xx with an OperationOutcome (or the 501 of the patient-level operation in
    this app, which has no EHR: it comes after the caller and the body were checked)."""
    event(f"HTTP {response.status_code}")
    not_configured = response.status_code == 501 and "FHIR_CML_FHIR_BASE" in response.get_data(
        as_text=True
    )
    assert response.status_code < 500 or not_configured, response.get_data(as_text=True)
    if response.status_code >= 400:
        assert response.get_json()["resourceType"] == "OperationOutcome"


FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(
    body=bodies, query=st.sampled_from(["", "?asOf=2025-06-30", "?guideline=eln2009", "?asOf=x"])
)
def test_operation_never_fails_with_a_5xx(client: FlaskClient, body: Any, query: str) -> None:
    answered(
        client.post(
            f"/fhir/$cml-assess{query}", data=json.dumps(body), content_type="application/fhir+json"
        )
    )


@FUZZ
@given(
    body=damaged_examples(), query=st.sampled_from(["", "?asOf=2025-06-30", "?guideline=eln2009"])
)
def test_damaged_patients_never_fail_with_a_5xx(client: FlaskClient, body: Any, query: str) -> None:
    answered(
        client.post(
            f"/fhir/$cml-assess{query}", data=json.dumps(body), content_type="application/fhir+json"
        )
    )


@FUZZ
@given(
    raw=st.binary(max_size=300),
    media=st.sampled_from(
        [
            "application/fhir+json",
            "application/json",
            "text/plain",
            "",
            "application/json; charset=x",
        ]
    ),
)
def test_raw_bytes_never_fail_with_a_5xx(client: FlaskClient, raw: bytes, media: str) -> None:
    answered(client.post("/fhir/$cml-assess", data=raw, content_type=media or None))
    path = "/cds-services/cml-monitoring"
    answered(client.post(path, data=raw, content_type=media or None, headers=_token(path)))


def _token(path: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {SIGNER.token(PUBLIC + path)}"}


@FUZZ
@given(
    prefetch=st.dictionaries(
        st.sampled_from(
            [
                "patient",
                "bcrAbl1",
                "troughs",
                "otherResults",
                "medications",
                "conditions",
                "adverseEvents",
            ]
        ),
        st.none() | fhirish | bundles,
        min_size=7,
    ),
    context=st.dictionaries(st.text(max_size=10), any_json, max_size=3),
)
def test_hook_calls_never_fail_with_a_5xx(
    client: FlaskClient, prefetch: dict[str, Any], context: dict[str, Any]
) -> None:
    body = hook_request("patient-view", "p1", prefetch)
    body["context"].update(context)
    path = "/cds-services/cml-monitoring"
    answered(client.post(path, json=body, headers=_token(path)))


@FUZZ
@given(drafts=st.lists(fhirish | any_json, max_size=4), selections=any_json)
def test_order_calls_never_fail_with_a_5xx(
    client: FlaskClient, drafts: list[Any], selections: Any
) -> None:
    body = hook_request(
        "order-select",
        "p1",
        {"patient": None, "mutations": None, "medications": None, "conditions": None},
        selections=selections,
        draftOrders={"resourceType": "Bundle", "entry": [{"resource": d} for d in drafts]},
    )
    path = "/cds-services/cml-tki-order"
    answered(client.post(path, json=body, headers=_token(path)))


@FUZZ
@given(body=any_json | st.fixed_dictionaries({"feedback": st.lists(any_json, max_size=3)}))
def test_feedback_never_fails_with_a_5xx(client: FlaskClient, body: Any) -> None:
    path = "/cds-services/cml-monitoring/feedback"
    answered(client.post(path, json=body, headers=_token(path)))


# --- any JSON string, lone surrogates included ---------------------------------------------------

lone_surrogates = st.integers(min_value=0xD800, max_value=0xDFFF).map(chr)
json_strings = st.text(max_size=12) | st.builds(
    lambda before, odd, after: before + odd + after,
    st.text(max_size=6),
    lone_surrogates,
    st.text(max_size=6),
)
strange_json = st.recursive(
    st.none() | st.booleans() | st.integers() | json_strings,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(json_strings, inner, max_size=4),
    max_leaves=20,
)
EXAMPLE_RESOURCES = example_resources(json.loads(EXAMPLES[2].read_text()))
EXAMPLE_PATIENT = next(r["id"] for r in EXAMPLE_RESOURCES if r["resourceType"] == "Patient")
VALID_BODIES = {
    "/fhir/$cml-assess": {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "resource", "resource": json.loads(EXAMPLES[2].read_text())},
            {"name": "asOf", "valueDate": "2025-06-30"},
        ],
    },
    "/fhir/Patient/p1/$cml-assess": {
        "resourceType": "Parameters",
        "parameter": [{"name": "asOf", "valueDate": "2025-06-30"}],
    },
    "/cds-services/cml-monitoring": patient_view(EXAMPLE_RESOURCES, EXAMPLE_PATIENT),
    "/cds-services/cml-tki-order": hook_request(
        "order-select",
        EXAMPLE_PATIENT,
        {"patient": None, "mutations": None, "medications": None, "conditions": None},
        selections=["MedicationRequest/o1"],
        draftOrders={"resourceType": "Bundle", "entry": []},
    ),
    "/cds-services/cml-monitoring/feedback": {
        "feedback": [
            {
                "card": "c1",
                "outcome": "overridden",
                "overrideReason": {"reason": {"code": "x", "system": "s"}, "userComment": "c"},
                "outcomeTimestamp": "2025-06-30T10:00:00Z",
            }
        ]
    },
}


def _string_places(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths to every string value and every key (``("key", ...)``) in a JSON value."""
    found: list[tuple[Any, ...]] = []
    if isinstance(value, str):
        found.append(path)
    elif isinstance(value, list):
        for n, item in enumerate(value):
            found += _string_places(item, (*path, n))
    elif isinstance(value, dict):
        for key, item in value.items():
            found.append(("key", *path, key))
            found += _string_places(item, (*path, key))
    return found


@st.composite
def spoilt(draw: st.DrawFn) -> tuple[str, Any]:
    """A valid request body with a few of its strings (or keys) replaced by strange text."""
    path = draw(st.sampled_from(sorted(VALID_BODIES)))
    body = copy.deepcopy(VALID_BODIES[path])
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        place = draw(st.sampled_from(_string_places(body)))
        text = draw(json_strings)
        is_key = place[0] == "key"
        steps = place[1:] if is_key else place
        holder = body
        for step in steps[:-1]:
            holder = holder[step]
        last = steps[-1]
        if is_key:
            if isinstance(holder, dict) and last in holder:
                holder[text] = holder.pop(last)
        else:
            holder[last] = text
    return path, body


def post_json(client: FlaskClient, path: str, body: Any) -> Any:
    """POST with ``json.dumps`` (lone surrogates become ``\\udXXX`` escapes, as a client's
    JSON library writes them) and whatever credentials the endpoint takes."""
    data = json.dumps(body)  # ensure_ascii: escapes, never raw surrogates
    audience = PUBLIC + ("/fhir" if path.startswith("/fhir/Patient") else path)
    return client.post(
        path,
        data=data,
        content_type="application/json",
        headers={"Authorization": f"Bearer {SIGNER.token(audience, scope='system/*.rs')}"},
    )


@FUZZ
@given(path=st.sampled_from(sorted(VALID_BODIES)), body=strange_json)
def test_any_json_with_any_strings_never_fails_with_a_5xx(
    client: FlaskClient, path: str, body: Any
) -> None:
    answered(post_json(client, path, body))


@FUZZ
@given(request=spoilt())
def test_strange_strings_anywhere_in_valid_requests_never_fail_with_a_5xx(
    client: FlaskClient, request: tuple[str, Any]
) -> None:
    path, body = request
    answered(post_json(client, path, body))


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/fhir/$cml-assess", {"resourceType": "\udc80"}),
        ("/fhir/$cml-assess", {"resourceType": "Patient\udc80", "id": "x"}),
        ("/cds-services/cml-monitoring", {"hook": "\ud800patient-view"}),
        ("/cds-services/cml-monitoring", {"\udc80": 1}),
        ("/fhir/Patient/p1/$cml-assess", {"resourceType": "Parameters", "id": "\udfff"}),
    ],
)
def test_lone_surrogates_are_a_400_that_says_so(
    client: FlaskClient, path: str, body: dict[str, Any]
) -> None:
    response = post_json(client, path, json.loads(json.dumps(body).replace("\\\\", "\\")))
    assert response.status_code == 400, response.get_data(as_text=True)
    assert "lone surrogate" in response.get_json()["issue"][0]["diagnostics"]


def test_a_surrogate_pair_is_text() -> None:
    assert json.loads('"\\ud83d\\ude00"') == "\U0001f600"


@FUZZ
@given(
    segment=st.binary(max_size=20) | json_strings.map(lambda t: t.encode("utf-8", "surrogatepass")),
    query=st.binary(max_size=20),
)
def test_any_path_and_query_never_fail_with_a_5xx(
    client: FlaskClient, segment: bytes, query: bytes
) -> None:
    encoded, asked = quote(segment, safe=""), quote(query, safe="")
    headers = {"Authorization": f"Bearer {SIGNER.token(PUBLIC + '/fhir', scope='system/*.rs')}"}
    for url in (
        f"/fhir/Patient/{encoded}/$cml-assess?asOf={asked}",
        f"/fhir/{encoded}/{encoded}?_format={asked}",
        f"/cds-services/{encoded}",
        f"/fhir/$cml-assess?guideline={asked}&asOf={asked}",
    ):
        answered(client.get(url, headers=headers))


@FUZZ
@given(
    claims=st.dictionaries(
        st.sampled_from(["jti", "tenant", "sub", "iss", "aud", "scope", "patient"]),
        json_strings,
        min_size=1,
    )
)
def test_strange_strings_in_jwt_claims_never_fail_with_a_5xx(
    client: FlaskClient, claims: dict[str, str]
) -> None:
    path = "/cds-services/cml-monitoring"
    token = SIGNER.token(claims.pop("aud", PUBLIC + path), **claims)
    body = VALID_BODIES[path]
    answered(client.post(path, json=body, headers={"Authorization": f"Bearer {token}"}))
    api = SIGNER.token(PUBLIC + "/fhir", **claims)
    answered(client.get("/fhir/Patient/p1/$cml-assess", headers={"Authorization": f"Bearer {api}"}))
