"""Bundles of what fhir-cml writes.

- A *transaction* to POST to the EHR's FHIR server: conditional creates keyed on the assessment
  fingerprint, so writing the same Bundle twice creates nothing the second time.
- A *result* Bundle (type ``collection``) for the FHIR operation: the same resources plus an
  OperationOutcome of the issues met while reading and assessing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fhir_cml.domain.model import Issue
from fhir_cml.domain.results import Assessment
from fhir_cml.fhir.canonical import ID_ASSESSMENT, ID_CARE_PLAN, ID_REQUEST
from fhir_cml.fhir.outbound.care_plan import build_care_plan
from fhir_cml.fhir.outbound.identifiers import OutboundIds, full_url, if_none_exist
from fhir_cml.fhir.outbound.operation_outcome import operation_outcome
from fhir_cml.fhir.outbound.provenance import build_provenance, instant
from fhir_cml.fhir.outbound.requests import Proposed, build_requests
from fhir_cml.fhir.outbound.risk_assessment import build_risk_assessment


@dataclass(frozen=True, slots=True)
class Written:
    """The resources written for one assessment, linked through their fullUrls: the
    RiskAssessment, the CarePlan, the requests it proposes (:mod:`.requests`) and the
    Provenance; ``patient`` is the assessed patient's reference (``Patient/<id>``)."""

    ids: OutboundIds
    risk_assessment: dict[str, Any]
    care_plan: dict[str, Any]
    provenance: dict[str, Any]
    patient: str = ""
    requests: tuple[Proposed, ...] = ()

    @property
    def resources(self) -> list[dict[str, Any]]:
        return [resource for _, resource in self.entries]

    @property
    def entries(self) -> list[tuple[str, dict[str, Any]]]:
        """(fullUrl, resource) of each: RiskAssessment, CarePlan, requests, Provenance."""
        return [
            (self.ids.risk_assessment, self.risk_assessment),
            (self.ids.care_plan, self.care_plan),
            *((r.url, r.resource) for r in self.requests),
            (self.ids.provenance, self.provenance),
        ]

    @property
    def request_urls(self) -> tuple[str, ...]:
        return tuple(r.url for r in self.requests)


def build(
    assessment: Assessment,
    recorded: datetime,
    *,
    profiles: bool = True,
    agents: Sequence[dict[str, Any]] = (),
) -> Written:
    """The resources of one assessment.

    ``profiles=False`` leaves ``meta.profile`` out: a server that honours a claimed profile
    refuses the write unless it can read (and agrees with) the profile, so claiming is a
    deployment's choice (docs/sync.md). ``agents``: further Provenance agents (a clinician).
    """
    ids = OutboundIds.of(assessment)
    requests = build_requests(assessment, ids, recorded)
    written = Written(
        ids,
        build_risk_assessment(assessment, ids),
        build_care_plan(assessment, ids.risk_assessment, recorded, ids, requests),
        build_provenance(
            assessment,
            (ids.risk_assessment, ids.care_plan, *(r.url for r in requests)),
            recorded,
            agents,
        ),
        assessment.patient,
        requests,
    )
    if not profiles:
        for resource in written.resources:
            meta = resource.get("meta")
            if isinstance(meta, dict):
                meta.pop("profile", None)
                if not meta:
                    del resource["meta"]
    return written


def transaction_entries(written: Written) -> list[dict[str, Any]]:
    fp = written.ids.fingerprint
    return [
        _entry(
            written.ids.risk_assessment,
            written.risk_assessment,
            if_none_exist(ID_ASSESSMENT, fp),
        ),
        _entry(written.ids.care_plan, written.care_plan, if_none_exist(ID_CARE_PLAN, fp)),
        *(
            _entry(r.url, r.resource, if_none_exist(ID_REQUEST, _identifier_value(r.resource)))
            for r in written.requests
        ),
        _entry(
            written.ids.provenance,
            written.provenance,
            if_none_exist(ID_ASSESSMENT, fp, "target:RiskAssessment.identifier"),
        ),
    ]


def transaction_bundle(assessments: Iterable[Assessment], recorded: datetime) -> dict[str, Any]:
    """One transaction for many patients: a conditional create of each resource, ready to POST."""
    entries = [e for a in assessments for e in transaction_entries(build(a, recorded))]
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "timestamp": instant(recorded),
        "entry": entries,
    }


def result_bundle(
    assessments: Sequence[Assessment], recorded: datetime, issues: Iterable[Issue] = ()
) -> dict[str, Any]:
    """A ``collection``: each assessment's resources, then one OperationOutcome of all issues.

    ``issues`` are those not tied to an assessed patient (unreadable input, skipped patients).
    """
    written = [build(a, recorded) for a in assessments]
    entries = [
        {"fullUrl": url, "resource": resource} for w in written for url, resource in w.entries
    ]
    all_issues = [i for a in assessments for i in a.issues] + list(issues)
    outcome_url = (
        written[0].ids.outcome
        if len(written) == 1
        else full_url("OperationOutcome|" + "|".join(w.ids.fingerprint for w in written))
    )
    entries.append({"fullUrl": outcome_url, "resource": operation_outcome(all_issues)})
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": instant(recorded),
        "entry": entries,
    }


def standalone(written: Written) -> list[dict[str, Any]]:
    """The RiskAssessment, the proposed requests and the CarePlan, each to be created on its own
    (the create actions of a CDS Hooks suggestion, which no Bundle joins), in that order: the
    CarePlan names the others by logical reference (their type and identifier), never by a
    fullUrl that would mean nothing outside a Bundle."""
    ids = written.ids
    logical: dict[str, dict[str, Any]] = {
        ids.risk_assessment: {
            "type": "RiskAssessment",
            "identifier": ids.assessment_identifier,
            "display": "fhir-cml reading (the RiskAssessment created with this plan)",
        },
        **{
            r.url: {
                "type": r.resource["resourceType"],
                "identifier": {"system": ID_REQUEST, "value": _identifier_value(r.resource)},
            }
            for r in written.requests
        },
    }
    care_plan = dict(written.care_plan, supportingInfo=[logical[ids.risk_assessment]])
    if "activity" in care_plan:
        care_plan["activity"] = [
            dict(a, reference={**logical[a["reference"]["reference"]], **_display(a["reference"])})
            if "reference" in a
            else a
            for a in care_plan["activity"]
        ]
    return [written.risk_assessment, *(r.resource for r in written.requests), care_plan]


def _display(reference: dict[str, Any]) -> dict[str, Any]:
    return {"display": reference["display"]} if reference.get("display") else {}


def _identifier_value(resource: dict[str, Any]) -> str:
    return next(str(i["value"]) for i in resource["identifier"] if i["system"] == ID_REQUEST)


def _entry(url: str, resource: dict[str, Any], condition: str) -> dict[str, Any]:
    return {
        "fullUrl": url,
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"], "ifNoneExist": condition},
    }
