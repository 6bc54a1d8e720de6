"""The FHIR face (base ``/fhir``): the CapabilityStatement, ``$cml-assess``, and the
conformance resources it names.

- ``GET /fhir/metadata``: the CapabilityStatement generated from profiles/ (with this
  installation's URL added), and ``GET /fhir/{type}/{id}`` and ``GET /fhir/{type}?url=...`` for
  the OperationDefinition, profiles, CodeSystems, ValueSets, ConceptMaps and PlanDefinitions it
  points at (a server that loads fhir-cml's profiles finds them by canonical URL here).
- ``POST /fhir/$cml-assess``: the patient's data in the body (a Parameters resource with
  ``resource`` parts, or a Bundle); ``asOf`` and ``guideline`` in the Parameters or the query.
- ``GET|POST /fhir/Patient/{id}/$cml-assess``: the data is fetched from the EHR's FHIR server
  (``FHIR_CML_FHIR_BASE``); ``writeBack=true`` (POST only: it changes the EHR) writes the
  suggestions with the same idempotent rules as ``fhir-cml sync``, and the OperationOutcome in
  the answer says what was created and what was already there. Only for an authenticated
  caller whose scopes cover the patient (and the write): :mod:`fhir_cml.web.callers`; with no
  way to authenticate callers configured the operation is off (403). The caller is checked
  before the id, the body or the EHR are looked at, so a refused caller learns nothing.

Both answer a Bundle (collection): RiskAssessment, CarePlan, Provenance and an OperationOutcome
of the issues met while reading and assessing.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Final

from flask import Blueprint, Response, request

from fhir_cml import conformance
from fhir_cml.app import WriteOutcome, checked_result_bundle, write_back
from fhir_cml.ehr.client import FhirClient
from fhir_cml.ehr.fetch import fetch_patient
from fhir_cml.errors import OperationOutcomeError, RequestError
from fhir_cml.fhir import canonical as c
from fhir_cml.fhir.outbound.operation_outcome import issue_element
from fhir_cml.web import assessment
from fhir_cml.web.http import check_accept, fhir_response, read_json
from fhir_cml.web.logs import note_caller
from fhir_cml.web.operation import OperationInput, from_body, from_query, merge
from fhir_cml.web.runtime import runtime
from fhir_cml.web.settings import env_name
from fhir_cml.web.terminology import site_fetch

bp = Blueprint("fhir", __name__, url_prefix="/fhir")

FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
SECURITY_SERVICE: Final = c.RESTFUL_SECURITY_SERVICE
CONFORMANCE_TYPES: Final = frozenset(
    {
        "CapabilityStatement",
        "OperationDefinition",
        "StructureDefinition",
        "CodeSystem",
        "ValueSet",
        "ConceptMap",
        "PlanDefinition",
    }
)
# The only search parameter of the conformance resources (CapabilityStatement rest[0]).
SEARCH_PARAMETERS: Final = frozenset({"url", "_format", "_count"})


@bp.before_request
def _negotiate() -> None:
    check_accept()


@bp.get("/metadata")
def metadata() -> Response:
    settings = runtime().settings
    return fhir_response(
        capability_statement(settings.public_base_url, secured=settings.api_callers_configured)
    )


def capability_statement(public_base_url: str, *, secured: bool = False) -> dict[str, Any]:
    """The generated CapabilityStatement, with ``implementation.url`` set to this base, and the
    server's ``security`` as this installation has it: the scopes checked when callers of the
    patient-level operation are authenticated; none when no way to authenticate them is
    configured (the operation is then off, and nothing served needs a token)."""
    statement = conformance.load("CapabilityStatement", "fhir-cml")
    statement.setdefault("implementation", {})["url"] = f"{public_base_url}/fhir"
    if not secured:
        statement["rest"][0].pop("security", None)
        return statement
    statement["rest"][0]["security"] = {
        "service": [
            {
                "coding": [
                    {
                        "system": SECURITY_SERVICE,
                        "code": "SMART-on-FHIR",
                        "display": "SMART-on-FHIR",
                    }
                ]
            }
        ],
        "description": (
            "Patient/[id]/$cml-assess needs a bearer access token (SMART Backend Services) "
            "whose scopes cover the patient: system/ or patient/ read of Patient and the "
            "input types, and create/update of RiskAssessment and CarePlan and create of "
            "Provenance for writeBack. $cml-assess with the data in the body and the "
            "conformance resources need none."
        ),
    }
    return statement


@bp.get(f"/<any({','.join(sorted(CONFORMANCE_TYPES))}):resource_type>")
def search_conformance(resource_type: str) -> Response:
    """``GET [type]?url=...``: the conformance resources of that type, by canonical URL."""
    unknown = sorted(set(request.args) - SEARCH_PARAMETERS)
    if unknown:
        raise RequestError(
            f"Unknown search parameter {unknown[0][:64]!r}: {resource_type} is searched by url.",
            code="not-supported",
            expression=unknown[0][:64],
        )
    wanted = request.args.getlist("url")
    urls = {u.split("|", 1)[0] for value in wanted for u in value.split(",")}
    found = [
        r
        for r in conformance.all_resources()
        if r["resourceType"] == resource_type and (not wanted or r.get("url") in urls)
    ]
    base = f"{runtime().settings.public_base_url}/fhir"
    return fhir_response(
        {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(found),
            "link": [{"relation": "self", "url": request.url}],
            "entry": [
                {
                    "fullUrl": f"{base}/{r['resourceType']}/{r['id']}",
                    "resource": r,
                    "search": {"mode": "match"},
                }
                for r in found
            ],
        }
    )


@bp.get("/<resource_type>/<resource_id>")
def read_conformance(resource_type: str, resource_id: str) -> Response:
    if resource_type not in CONFORMANCE_TYPES:
        raise RequestError(
            f"This server holds no {resource_type[:64]} resources.",
            status=404,
            code="not-found",
        )
    try:
        return fhir_response(conformance.load(resource_type, resource_id))
    except KeyError:
        raise RequestError(
            f"No {resource_type}/{resource_id[:64]} here.", status=404, code="not-found"
        ) from None


@bp.post("/$cml-assess")
def assess_system() -> Response:
    given = merge(from_query(request.args.to_dict(flat=False)), from_body(read_json()))
    if given.write_back:
        raise RequestError(
            "writeBack is for Patient/[id]/$cml-assess, where the data comes from the EHR.",
            expression="writeBack",
        )
    if not given.resources:
        raise RequestError(
            "No patient data: give the patient's resources as 'resource' parameters or post a "
            "Bundle.",
            status=422,
            code="required",
        )
    return _assess(list(given.resources), given, patient=None)


@bp.route("/Patient/<patient_id>/$cml-assess", methods=["GET", "POST"])
def assess_patient(patient_id: str) -> Response:
    callers = runtime().callers
    if not callers.enabled:
        raise callers.off()
    caller = callers.authenticate(request.headers.get("Authorization"))
    note_caller(caller.issuer, caller.client)
    if not FHIR_ID.match(patient_id):
        raise RequestError(f"{patient_id[:80]!r} is not a FHIR id.", expression="id")
    query = from_query(request.args.to_dict(flat=False))
    body = read_json(required=False) if request.method == "POST" else None
    given = merge(query, from_body(body)) if body is not None else query
    if given.write_back and request.method != "POST":
        raise RequestError(
            "writeBack=true changes the EHR: send it with POST.",
            expression="writeBack",
        )
    callers.authorize(caller, patient_id, write=bool(given.write_back))
    ehr = runtime().ehr
    if ehr is None:
        raise RequestError(
            f"No EHR FHIR server is configured ({env_name('fhir_base')}); post the data to "
            "/fhir/$cml-assess instead.",
            status=501,
            code="not-supported",
        )
    with ehr.call() as client:
        fetched = fetch_patient(client, patient_id, site_fetch())
        if not any(r.get("resourceType") == "Patient" for r in fetched.resources):
            raise RequestError(
                f"Patient/{patient_id} is not known to the EHR's FHIR server.",
                status=404,
                code="not-found",
            )
        return _assess(
            [*fetched.resources, *given.resources], given, f"Patient/{patient_id}", client
        )


def _assess(
    resources: list[Any],
    given: OperationInput,
    patient: str | None,
    client: FhirClient | None = None,
) -> Response:
    """The assessment of the resources; with ``writeBack``, written through ``client``."""
    rt = runtime()
    now = datetime.now(UTC).replace(microsecond=0)
    loaded = assessment.load(resources, rt.settings, now)
    record = assessment.only_patient(loaded, patient)
    result = assessment.assess_record(
        record,
        given.as_of or assessment.today(),
        given.guideline or rt.settings.guideline,
        rt.settings,
    )
    bundle = checked_result_bundle([result], now, loaded.issues)
    if given.write_back:
        assert client is not None
        written = write_back(client, result, now, settings=rt.settings.writing)
        if not written.ok:
            raise _write_failed(written)
        bundle["entry"][-1]["resource"]["issue"] += write_back_issues(written)
    return fhir_response(bundle)


def write_back_issues(written: WriteOutcome) -> list[dict[str, Any]]:
    """What the write-back did, one informational issue per resource (created, already there,
    revoked), each naming the resource on the EHR."""
    issues = []
    if written.action == "unchanged":
        issues.append(
            issue_element(
                "information",
                "informational",
                "writeBack: nothing written; the EHR already holds this assessment's suggestions.",
                resource=written.care_plan,
            )
        )
    for location in written.created:
        issues.append(
            issue_element(
                "information", "informational", f"writeBack: created {location}.", resource=location
            )
        )
    for location in written.existing:
        issues.append(
            issue_element(
                "information",
                "informational",
                f"writeBack: {location} was already there; nothing created.",
                resource=location,
            )
        )
    for location in written.updated:
        issues.append(
            issue_element(
                "information",
                "informational",
                f"writeBack: updated {location} (superseded by this assessment).",
                resource=location,
            )
        )
    return issues


def _write_failed(written: WriteOutcome) -> OperationOutcomeError:
    issues = [
        issue_element(
            "error",
            "exception",
            f"writeBack failed: {written.error or 'the EHR refused the write'}",
        )
    ]
    upstream = (written.outcome or {}).get("issue")
    if isinstance(upstream, list):
        issues += [i for i in upstream if isinstance(i, dict)]
    return OperationOutcomeError(
        "writeBack failed",
        outcome={"resourceType": "OperationOutcome", "issue": issues},
        status=502,
    )
