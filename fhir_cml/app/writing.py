"""Writing suggestions to the EHR: the one path of ``fhir-cml sync``, ``$cml-assess`` with
``writeBack=true`` and the SMART app's Accept and Dismiss.

Every face goes through here so that what reaches an EHR is built by the same builders,
validated the same way (a resource fhir-cml built wrong is never sent), claimed against the same
profiles (or none: :attr:`WriteSettings.claim_profiles`), and written with the same idempotent,
superseding rules (:mod:`fhir_cml.ehr.writeback`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fhir_cml.domain import Assessment
from fhir_cml.ehr.client import FhirClient
from fhir_cml.ehr.fetch import DEFAULT_FETCH, FetchOptions, current_suggestions
from fhir_cml.ehr.writeback import (
    Plan,
    TransactionLimit,
    WriteMode,
    WriteOutcome,
    care_plan_fingerprint,
    plan_writes,
    write_plans,
)
from fhir_cml.errors import FhirClientError, FhirResponseError, RequestError
from fhir_cml.fhir.outbound import Written, build, validate
from fhir_cml.fhir.outbound.narrative import WITHDRAWN, superseded
from fhir_cml.fhir.outbound.provenance import agent, build_revocation
from fhir_cml.fhir.outbound.supersede import local_reference

__all__ = [
    "Decider",
    "WriteSettings",
    "plan",
    "revoke",
    "suggestions",
    "write",
    "write_back",
]


@dataclass(frozen=True, slots=True)
class WriteSettings:
    """How suggestions are written, the same for every face.

    ``mode``: how entries are sent (:data:`~fhir_cml.ehr.writeback.WriteMode`).
    ``claim_profiles``: whether written resources name fhir-cml's profiles in ``meta.profile``.
    Off by default: a server that honours a claimed profile refuses the write unless it can read
    the profile (the client then needs read access to StructureDefinition, docs/sync.md), so
    claiming is a deployment's decision, never a surprise. ``fetch``: batching and paging of
    the searches for what the server holds.
    """

    mode: WriteMode = "auto"
    claim_profiles: bool = False
    fetch: FetchOptions = field(default_factory=FetchOptions)


DEFAULT_WRITE = WriteSettings(fetch=DEFAULT_FETCH)


@dataclass(frozen=True, slots=True)
class Decider:
    """The clinician behind a write (Accept) or a withdrawal (Dismiss).

    ``who`` is a FHIR Reference (``{"reference": "Practitioner/123", "display": ...}``); it
    becomes a Provenance agent in ``role`` (a provenance-participant-type code), next to
    fhir-cml as assembler, so the EHR's record says who decided as well as what computed.
    """

    who: dict[str, Any]
    role: str = "verifier"

    def as_agent(self) -> dict[str, Any]:
        return agent(self.who, self.role)


def suggestions(
    assessment: Assessment,
    recorded: datetime,
    *,
    claim_profiles: bool = True,
    decider: Decider | None = None,
) -> Written:
    """The RiskAssessment, CarePlan and Provenance of an assessment, each validated.

    Used for what is written and for what is shown (CDS cards): one builder, one gate. Raises
    :class:`~fhir_cml.errors.OperationOutcomeError` (500) naming the element paths when
    fhir-cml built an invalid resource (a bug, never the caller's fault).
    """
    written = build(
        assessment,
        recorded,
        profiles=claim_profiles,
        agents=[decider.as_agent()] if decider else (),
    )
    for resource in written.resources:
        validate(resource)
    return written


def plan(
    client: FhirClient,
    assessments: Sequence[Assessment],
    recorded: datetime,
    *,
    settings: WriteSettings = DEFAULT_WRITE,
    decider: Decider | None = None,
) -> list[Plan]:
    """What writing these assessments takes, decided from what the server holds (reads only:
    ``--dry-run`` shows these)."""
    written = [
        suggestions(a, recorded, claim_profiles=settings.claim_profiles, decider=decider)
        for a in assessments
    ]
    return plan_writes(client, written, settings.fetch)


def write(
    client: FhirClient,
    plans: Sequence[Plan],
    *,
    settings: WriteSettings = DEFAULT_WRITE,
    limit: TransactionLimit | None = None,
) -> list[WriteOutcome]:
    """Carries the plans out; one outcome per plan, in order (a failure is reported on its
    patient's outcome, never raised)."""
    return write_plans(client, plans, mode=settings.mode, limit=limit)


def write_back(
    client: FhirClient,
    assessment: Assessment,
    recorded: datetime,
    *,
    settings: WriteSettings = DEFAULT_WRITE,
    decider: Decider | None = None,
) -> WriteOutcome:
    """Writes one patient's suggestions, superseding the previous ones: what $cml-assess
    (``writeBack=true``) and the SMART app's Accept do."""
    [planned] = plan(client, [assessment], recorded, settings=settings, decider=decider)
    [outcome] = write(client, [planned], settings=settings)
    return outcome


def revoke(
    client: FhirClient,
    patient_id: str,
    fingerprint: str,
    recorded: datetime,
    *,
    reason: str,
    decider: Decider | None = None,
    settings: WriteSettings = DEFAULT_WRITE,
) -> WriteOutcome:
    """Withdraws the draft suggestion of this assessment (a clinician dismissed it): its CarePlan
    becomes ``revoked`` and a Provenance records why and who.

    A later sync does not write the same suggestion again (the reading has not changed); a new
    reading is proposed as usual. Nothing to withdraw (already revoked, or another assessment
    is current) is a 409 :class:`~fhir_cml.errors.RequestError` saying so.
    """
    outcome = WriteOutcome(patient_id, fingerprint, "revoke")
    try:
        drafts = current_suggestions(client, [patient_id], settings.fetch)[patient_id]
        found = [p for p in drafts if care_plan_fingerprint(p) == fingerprint]
        if not found:
            raise RequestError(
                f"No draft suggestion of this assessment for Patient/{patient_id}: it was "
                "withdrawn or replaced meanwhile.",
                status=409,
                code="conflict",
            )
        care_plan = dict(found[0], status="revoked")
        superseded(care_plan, WITHDRAWN)
        where = local_reference(care_plan)
        version = (care_plan.get("meta") or {}).get("versionId")
        client.request(
            "PUT",
            where,
            json=care_plan,
            headers={
                "Prefer": "return=minimal",
                **({"If-Match": f'W/"{version}"'} if version else {}),
            },
        )
        # Read back: the answer to the update may carry no body.
        revoked = client.read("CarePlan", str(care_plan["id"]))
        if revoked.get("status") != "revoked":
            raise FhirResponseError(f"update {where}: the server did not revoke it")
        now = (revoked.get("meta") or {}).get("versionId")
        provenance = build_revocation(
            f"{where}/_history/{now}" if now else where,
            recorded,
            reason,
            [decider.as_agent()] if decider else (),
        )
        validate(provenance)
        client.create(provenance)
    except FhirClientError as err:
        outcome.ok = False
        outcome.error = err.message
        outcome.outcome = err.outcome
        return outcome
    outcome.updated.append(where)
    outcome.care_plan = where
    return outcome
