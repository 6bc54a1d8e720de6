"""Reading the CML population and each patient's inputs from a FHIR server, in few requests.

- **Population** (:func:`find_population`): the patients with a CML Condition (SNOMED CT
  92818009, ICD-10 C92.1x, ICD-O-3 9875/3), a TKI MedicationStatement or MedicationRequest, or a
  BCR::ABL1 result, as configured.
  Only references are needed, so these searches ask for ``_elements=subject`` and large pages.
- **Inputs** (:func:`fetch_patients`): one search per resource type for many patients at once
  (``patient=a,b,c``), Observations narrowed to the codes fhir-cml reads (a CML patient has
  thousands of other results), MedicationStatements and MedicationRequests with their
  Medications (``_include``): six searches for a batch of patients instead of six per patient.
- **Changes** (:func:`changed_patients`): the patients with an input updated since a moment
  (``_lastUpdated=ge``), for incremental runs.

:func:`fetch_patient` reads one patient's inputs the same way, for the services that work on one
patient at a time. :func:`input_fingerprint` says whether what was read differs from last time.
What fhir-cml itself wrote (:func:`draft_suggestions`, :func:`assessments_of`,
:func:`suggestions_by_identifier`) is read for the write path, with the Provenances of each.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

from fhir_cml import __version__
from fhir_cml.ehr.client import FhirClient
from fhir_cml.fhir import canonical as c
from fhir_cml.fhir.inbound.codes import OBSERVATION_CODES, kind_of
from fhir_cml.fhir.inbound.medications import TKI_ATC, TKI_RXNORM
from fhir_cml.fhir.inbound.references import literal
from fhir_cml.fhir.outbound.requests import request_key


class Population(StrEnum):
    """How the CML population is found (``--population``)."""

    CONDITION = "condition"
    MEDICATION = "medication"
    OBSERVATION = "observation"


# Conditions coded as CML (docs/inbound.md, "Patient and diagnosis").
CML_CONDITION_CODES: Final = (
    (c.SNOMED, "92818009"),
    (c.ICD10, "C92.1"),
    (c.ICD10, "C92.10"),
    (c.ICD10, "C92.11"),
    (c.ICD10, "C92.12"),
    (c.ICD10_CM, "C92.10"),
    (c.ICD10_CM, "C92.11"),
    (c.ICD10_CM, "C92.12"),
    (c.ICD_O_3, "9875/3"),
)
# TKIs by the codes fhir-cml reads (the inbound mapper's RxNorm and ATC tables).
TKI_CODES: Final = (
    *((c.RXNORM, code) for code in sorted(TKI_RXNORM)),
    *((c.ATC, code) for code in sorted(TKI_ATC)),
)
# BCR::ABL1 (p210) results: evidence of CML (e1a2/p190 alone is typical of Ph+ ALL).
BCR_ABL1_CODES: Final = (
    (c.LOINC, "69380-4"),
    (c.LOINC, "55147-3"),
    (c.LOINC, "46434-7"),
    (c.LOINC, "50195-7"),
    (c.LOINC, "82905-1"),
)
# Every Observation code fhir-cml reads: the input searches ask for these only.
READ_OBSERVATION_CODES: Final = tuple(
    sorted((system, code) for code, systems in OBSERVATION_CODES.items() for system in systems)
)
INPUT_TYPES: Final = (
    "Patient",
    "Condition",
    "Observation",
    "MedicationStatement",
    "MedicationRequest",
    "AdverseEvent",
)
# Records that name their drug (directly or by a Medication): read with their Medications.
MEDICATION_RECORDS: Final = (
    "MedicationStatement",
    "MedicationRequest",
    "MedicationDispense",
    "MedicationAdministration",
)
# How each input type names its patient in a search (AdverseEvent has no `patient` parameter).
PATIENT_PARAM: Final = {
    "Patient": "_id",
    "Condition": "patient",
    "Observation": "patient",
    "MedicationStatement": "patient",
    "MedicationRequest": "patient",
    "MedicationDispense": "patient",
    "MedicationAdministration": "patient",
    "AdverseEvent": "subject",
    "CarePlan": "patient",
    "RiskAssessment": "patient",
}


@dataclass(frozen=True, slots=True)
class FetchOptions:
    """Batching and paging.

    ``batch_size`` patients go into one search (``patient=a,b,c``) unless their ids are longer
    than ``max_ids_chars`` together (URLs over ~8 KB are refused by many servers and proxies).
    ``page_size`` is ``_count``. ``observation_codes`` narrows the Observation searches (None:
    all Observations). ``post`` searches with ``POST [type]/_search``. ``extra_types`` adds input
    types a site has (``MedicationDispense``, ``MedicationAdministration``).
    """

    batch_size: int = 50
    page_size: int = 1000
    max_ids_chars: int = 3000
    observation_codes: tuple[tuple[str, str], ...] | None = READ_OBSERVATION_CODES
    elements: bool = True
    post: bool = False
    # MedicationDispense / MedicationAdministration too, where a site records them.
    extra_types: tuple[str, ...] = ()


DEFAULT_FETCH: Final = FetchOptions()


@dataclass(slots=True)
class PatientInputs:
    """One patient's resources as read: the Patient, inputs, and the Medications they name."""

    patient_id: str
    resources: list[dict[str, Any]] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"Patient/{self.patient_id}"


# --- population ----------------------------------------------------------------------------------


def find_population(
    client: FhirClient,
    kinds: Iterable[Population] = (Population.CONDITION,),
    options: FetchOptions = DEFAULT_FETCH,
) -> set[str]:
    """Ids of the patients with CML evidence of the given kinds."""
    found: set[str] = set()
    for kind in kinds:
        for resource_type, params in _population_searches(kind):
            for resource in client.search(
                resource_type, _with_paging(params, options, elements=True), post=options.post
            ):
                pid = patient_id_of(resource)
                if pid is not None:
                    found.add(pid)
    return found


def _population_searches(kind: Population) -> list[tuple[str, list[tuple[str, str]]]]:
    if kind is Population.CONDITION:
        return [("Condition", [("code", _tokens(CML_CONDITION_CODES))])]
    if kind is Population.OBSERVATION:
        return [("Observation", [("code", _tokens(BCR_ABL1_CODES))])]
    codes = _tokens(TKI_CODES)
    # A statement or an order names its drug by code, or by reference to a Medication (chained).
    return [
        (resource_type, [(param, codes)])
        for resource_type in ("MedicationStatement", "MedicationRequest")
        for param in ("code", "medication.code")
    ]


def group_members(client: FhirClient, group_id: str) -> list[str]:
    """Patient ids of a Group's active members (``--group``)."""
    group = client.read("Group", group_id)
    members: list[str] = []
    for member in group.get("member") or []:
        if not isinstance(member, dict) or member.get("inactive") is True:
            continue
        pid = _patient_id((member.get("entity") or {}).get("reference"))
        if pid is not None and pid not in members:
            members.append(pid)
    return members


# --- changes -------------------------------------------------------------------------------------


def changed_patients(
    client: FhirClient, since: datetime, options: FetchOptions = DEFAULT_FETCH
) -> set[str]:
    """Patients with an input (of the kinds fhir-cml reads) updated at or after ``since``."""
    moment = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    changed: set[str] = set()
    medications: set[str] = set()
    for resource_type in (*INPUT_TYPES, *options.extra_types, "Medication"):
        params: list[tuple[str, str]] = [("_lastUpdated", f"ge{moment}")]
        if resource_type == "Observation" and options.observation_codes:
            params.append(("code", _tokens(options.observation_codes)))
        elements = resource_type not in ("Patient", "Medication")
        query = _with_paging(params, options, elements=elements)
        if resource_type == "MedicationRequest":  # fhir-cml's own proposals: by identifier
            query = [(k, "subject,identifier" if k == "_elements" else v) for k, v in query]
        for resource in client.search(resource_type, query, post=options.post):
            if request_key(resource) is not None:
                continue  # a proposal fhir-cml wrote changes no input
            if resource_type == "Patient":
                if isinstance(resource.get("id"), str):
                    changed.add(resource["id"])
            elif resource_type == "Medication":
                if isinstance(resource.get("id"), str):
                    medications.add(f"Medication/{resource['id']}")
            else:
                pid = patient_id_of(resource)
                if pid is not None:
                    changed.add(pid)
    # A changed Medication changes the patients whose statements and orders name it.
    for chunk in _chunks(sorted(medications), options.batch_size):
        params = [("medication", ",".join(chunk))]
        for resource_type in ("MedicationStatement", "MedicationRequest", *options.extra_types):
            for resource in client.search(
                resource_type, _with_paging(params, options, elements=True), post=options.post
            ):
                pid = patient_id_of(resource)
                if pid is not None:
                    changed.add(pid)
    return changed


# --- inputs --------------------------------------------------------------------------------------


def batches(
    patient_ids: Sequence[str], options: FetchOptions = DEFAULT_FETCH
) -> Iterator[list[str]]:
    """Patients in groups that fit one search: ``batch_size`` of them, ids within the budget."""
    batch: list[str] = []
    chars = 0
    for pid in patient_ids:
        cost = len(pid) + len("Patient/") + 1
        if batch and (len(batch) >= options.batch_size or chars + cost > options.max_ids_chars):
            yield batch
            batch, chars = [], 0
        batch.append(pid)
        chars += cost
    if batch:
        yield batch


def fetch_patients(
    client: FhirClient, patient_ids: Sequence[str], options: FetchOptions = DEFAULT_FETCH
) -> dict[str, PatientInputs]:
    """The inputs of a batch of patients: one search per resource type for all of them.

    Every patient asked for gets an entry (possibly empty: a patient the server does not know).
    Resources naming a patient outside the batch (a server ignoring part of the query) are
    dropped rather than attributed to the wrong person.
    """
    wanted = list(dict.fromkeys(patient_ids))
    inputs = {pid: PatientInputs(pid) for pid in wanted}
    medications: dict[str, dict[str, Any]] = {}
    for resource_type in (*INPUT_TYPES, *options.extra_types):
        for resource in client.search(
            resource_type, input_query(resource_type, wanted, options), post=options.post
        ):
            rtype = resource.get("resourceType")
            if rtype == "Medication":
                if isinstance(resource.get("id"), str):
                    medications[f"Medication/{resource['id']}"] = resource
                continue
            if rtype != resource_type:
                continue  # an OperationOutcome entry (search.mode outcome) or an unasked include
            pid = resource.get("id") if rtype == "Patient" else patient_id_of(resource)
            if isinstance(pid, str) and pid in inputs:
                inputs[pid].resources.append(resource)
    if medications:
        for patient in inputs.values():
            named = {
                ref
                for r in patient.resources
                if r.get("resourceType") in MEDICATION_RECORDS
                for ref in [_medication_key(r)]
                if ref is not None and ref in medications
            }
            patient.resources.extend(medications[ref] for ref in sorted(named))
    return inputs


def fetch_patient(
    client: FhirClient, patient_id: str, options: FetchOptions = DEFAULT_FETCH
) -> PatientInputs:
    """One patient's inputs (the same searches as :func:`fetch_patients`, for one patient)."""
    return fetch_patients(client, [patient_id], options)[patient_id]


def input_query(
    resource_type: str, patient_ids: Sequence[str], options: FetchOptions = DEFAULT_FETCH
) -> list[tuple[str, str]]:
    """The search parameters reading ``resource_type`` for these patients."""
    param = PATIENT_PARAM[resource_type]
    if param == "subject":
        value = ",".join(f"Patient/{pid}" for pid in patient_ids)
    else:
        value = ",".join(patient_ids)
    params: list[tuple[str, str]] = [(param, value)]
    if resource_type == "Observation" and options.observation_codes:
        params.append(("code", _tokens(options.observation_codes)))
    if resource_type in MEDICATION_RECORDS:
        params.append(("_include", f"{resource_type}:medication"))
    return _with_paging(params, options, elements=False)


# --- what fhir-cml wrote (the suggestion side) ------------------------------------------------
#
# The write path decides from what the server holds (fhir_cml.ehr.writeback). Each search also
# brings the Provenances that target what it finds (``_revinclude``), so one search answers both
# "is it there" and "is its Provenance there".

SUGGESTION_PROVENANCE: Final = ("_revinclude", "Provenance:target")
# A CarePlan comes with the requests it proposes (its activity.reference: ServiceRequest,
# MedicationRequest, RequestGroup), which are superseded and withdrawn with it.
SUGGESTION_REQUESTS: Final = ("_include", "CarePlan:activity-reference")
REQUEST_TYPES: Final = ("ServiceRequest", "MedicationRequest", "RequestGroup")


def draft_suggestions(
    client: FhirClient, patient_ids: Sequence[str], options: FetchOptions = DEFAULT_FETCH
) -> list[dict[str, Any]]:
    """fhir-cml's CarePlans still proposed (``draft``) for these patients, the requests they
    propose and their Provenances (every resource found, matches and included alike)."""
    if not patient_ids:
        return []
    params = [
        ("patient", ",".join(patient_ids)),
        ("category", f"{c.CS_CML}|{c.CML_SUGGESTIONS}"),
        ("status", "draft"),
        SUGGESTION_REQUESTS,
        SUGGESTION_PROVENANCE,
    ]
    return list(
        client.search("CarePlan", _with_paging(params, options, elements=False), post=options.post)
    )


def assessments_of(
    client: FhirClient, patient_ids: Sequence[str], options: FetchOptions = DEFAULT_FETCH
) -> list[dict[str, Any]]:
    """The RiskAssessments of these patients (fhir-cml's current and replaced ones, and any
    other's: R4 has no search by code, the caller keeps its own by identifier), with their
    Provenances: what a repair needs when nothing says which assessments to look for."""
    if not patient_ids:
        return []
    params = [("patient", ",".join(patient_ids)), SUGGESTION_PROVENANCE]
    return list(
        client.search(
            "RiskAssessment", _with_paging(params, options, elements=False), post=options.post
        )
    )


def draft_requests(
    client: FhirClient, patient_ids: Sequence[str], options: FetchOptions = DEFAULT_FETCH
) -> list[dict[str, Any]]:
    """fhir-cml's proposed requests of these patients still ``draft``, whether a CarePlan
    proposes them or not (one search per request type, by the identifier system alone): what a
    repair needs to find a proposal left behind by an interrupted write."""
    if not patient_ids:
        return []
    params = [
        ("patient", ",".join(patient_ids)),
        ("identifier", f"{c.ID_REQUEST}|"),
        ("status", "draft"),
    ]
    return [
        resource
        for resource_type in REQUEST_TYPES
        for resource in client.search(
            resource_type, _with_paging(params, options, elements=False), post=options.post
        )
    ]


def suggestions_by_identifier(
    client: FhirClient,
    resource_type: str,
    fingerprints: Iterable[str],
    options: FetchOptions = DEFAULT_FETCH,
) -> list[dict[str, Any]]:
    """fhir-cml's RiskAssessments (or CarePlans, with the requests they propose; or proposed
    requests of one type, by ``<fingerprint>-<what>``) of these identifier values, whatever their
    status, with their Provenances; as many searches as the URL budget needs."""
    system = {"RiskAssessment": c.ID_ASSESSMENT, "CarePlan": c.ID_CARE_PLAN}.get(
        resource_type, c.ID_REQUEST
    )
    extra = [SUGGESTION_REQUESTS] if resource_type == "CarePlan" else []
    if resource_type in ("RiskAssessment", "CarePlan"):
        extra.append(SUGGESTION_PROVENANCE)
    tokens = [f"{system}|{fp}" for fp in sorted(set(fingerprints))]
    found: list[dict[str, Any]] = []
    for chunk in _chunks_within(tokens, options.max_ids_chars):
        params = [("identifier", ",".join(chunk)), *extra]
        found.extend(
            client.search(
                resource_type, _with_paging(params, options, elements=False), post=options.post
            )
        )
    return found


def requests_by_key(
    client: FhirClient,
    keys: Iterable[tuple[str, str]],
    options: FetchOptions = DEFAULT_FETCH,
) -> list[dict[str, Any]]:
    """fhir-cml's proposed requests by (type, identifier value): those a CarePlan names by
    identifier only, which no ``_include`` brings (one a CDS client created from a card)."""
    by_type: dict[str, set[str]] = {}
    for kind, key in keys:
        if kind in REQUEST_TYPES:
            by_type.setdefault(kind, set()).add(key)
    return [
        resource
        for kind, values in sorted(by_type.items())
        for resource in suggestions_by_identifier(client, kind, values, options)
    ]


# --- fingerprints --------------------------------------------------------------------------------


def input_fingerprint(resources: Iterable[dict[str, Any]], settings: Sequence[str] = ()) -> str:
    """SHA-256 over what a reading of these resources can depend on.

    A resource the server versions counts by ``type/id`` and ``meta.versionId`` (servers give a
    new version to every change; cheap to hash for thousands of resources); one without a
    version by its content without ``meta`` and narrative ``text``. Observations with codes
    fhir-cml does not read are left out (and fhir-cml's own proposed MedicationRequests), so a new
    blood pressure or a proposal written does not trigger a reassessment
    and a search narrowed to the codes read gives the same fingerprint as a Bulk Data export of
    everything. ``settings`` (the guideline, the ruleset and software versions, a conversion
    factor) are part of it: a new ruleset reassesses everyone.
    """
    parts = []
    for resource in resources:
        if resource.get("resourceType") == "Observation" and kind_of(resource.get("code")) is None:
            continue
        if request_key(resource) is not None:  # fhir-cml's own proposal: not an input
            continue
        meta = resource.get("meta")
        version = meta.get("versionId") if isinstance(meta, dict) else None
        if isinstance(version, str | int) and version != "" and resource.get("id"):
            parts.append(f"{resource['resourceType']}/{resource['id']}@{version}")
            continue
        body = {k: v for k, v in resource.items() if k not in ("meta", "text")}
        text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        parts.append(hashlib.sha256(text.encode("utf-8")).hexdigest())
    payload = "\n".join([__version__, *settings, "--", *sorted(parts)])
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


# --- references ----------------------------------------------------------------------------------


def patient_id_of(resource: dict[str, Any]) -> str | None:
    """The id of the Patient a resource is about (``subject``, else ``patient``)."""
    for name in ("subject", "patient"):
        holder = resource.get(name)
        if isinstance(holder, dict):
            pid = _patient_id(holder.get("reference"))
            if pid is not None:
                return pid
    return None


def _patient_id(reference: Any) -> str | None:
    if not isinstance(reference, str) or not reference:
        return None
    parsed = literal(reference)
    if parsed is None or parsed[0] != "Patient":
        return None
    return parsed[1]


def _medication_key(statement: dict[str, Any]) -> str | None:
    reference = (statement.get("medicationReference") or {}).get("reference")
    if not isinstance(reference, str):
        return None
    parsed = literal(reference)
    return f"Medication/{parsed[1]}" if parsed and parsed[0] == "Medication" else None


def _tokens(codes: Iterable[tuple[str, str]]) -> str:
    return ",".join(f"{system}|{code}" for system, code in codes)


def _with_paging(
    params: list[tuple[str, str]], options: FetchOptions, *, elements: bool
) -> list[tuple[str, str]]:
    out = [*params, ("_count", str(options.page_size))]
    if elements and options.elements:
        out.append(("_elements", "subject"))
    return out


def _chunks_within(items: Sequence[str], chars: int) -> Iterator[list[str]]:
    """Items in groups whose comma-joined length stays within ``chars`` (at least one each)."""
    group: list[str] = []
    used = 0
    for item in items:
        if group and used + len(item) + 1 > chars:
            yield group
            group, used = [], 0
        group.append(item)
        used += len(item) + 1
    if group:
        yield group


def _chunks(items: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), max(size, 1)):
        yield list(items[start : start + size])
