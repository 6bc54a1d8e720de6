"""Writing suggestions to the EHR: the one path of ``fhir-cml sync``, ``$cml-assess`` with
``writeBack=true`` and the SMART app's Accept and Dismiss.

Every face goes through here so that what reaches an EHR is built by the same builders,
validated the same way (a resource fhir-cml built wrong is never sent), claimed against the same
profiles (or none: :attr:`WriteSettings.claim_profiles`), and written with the same idempotent,
superseding rules (:mod:`fhir_cml.ehr.writeback`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fhir_cml.domain import Assessment
from fhir_cml.ehr.client import FhirClient
from fhir_cml.ehr.fetch import (
    DEFAULT_FETCH,
    SUGGESTION_REQUESTS,
    FetchOptions,
    draft_suggestions,
    requests_by_key,
)
from fhir_cml.ehr.writeback import (
    Hint,
    Plan,
    Target,
    TransactionLimit,
    WriteMode,
    WriteOutcome,
    care_plan_fingerprint,
    plan_writes,
    write_plans,
)
from fhir_cml.errors import FhirClientError, FhirResponseError, RequestError
from fhir_cml.fhir import canonical as c
from fhir_cml.fhir.outbound import Written, build, validate
from fhir_cml.fhir.outbound.care_plan import proposal_keys, proposed_requests
from fhir_cml.fhir.outbound.narrative import ACCEPTED, REPLACED, WITHDRAWN, superseded
from fhir_cml.fhir.outbound.provenance import agent, build_acceptance, build_revocation
from fhir_cml.fhir.outbound.requests import request_key, with_status
from fhir_cml.fhir.outbound.supersede import local_reference

__all__ = [
    "Decider",
    "WriteSettings",
    "accept",
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
    hints: Mapping[str, Hint] | None = None,
) -> list[Plan]:
    """What writing these assessments takes, decided from what the server holds (reads only:
    ``--dry-run`` shows these). ``hints`` (by patient id) say which earlier assessments to look
    for; without one, every RiskAssessment of the patient is read (a repair needs them all)."""
    targets = [_target(a, recorded, settings, decider) for a in assessments]
    return plan_writes(client, targets, settings.fetch, hints)


def write(
    client: FhirClient,
    plans: Sequence[Plan],
    *,
    settings: WriteSettings = DEFAULT_WRITE,
    limit: TransactionLimit | None = None,
) -> list[WriteOutcome]:
    """Carries the plans out; one outcome per plan, in order (a failure is reported on its
    patient's outcome, never raised)."""
    return write_plans(client, plans, mode=settings.mode, limit=limit, options=settings.fetch)


def write_back(
    client: FhirClient,
    assessment: Assessment,
    recorded: datetime,
    *,
    settings: WriteSettings = DEFAULT_WRITE,
    decider: Decider | None = None,
) -> WriteOutcome:
    """Writes one patient's suggestions, superseding the previous ones: what $cml-assess
    (``writeBack=true``) and the SMART app's Accept do. With a ``decider`` (a clinician's
    Accept, with :func:`accept` after it) a suggestion withdrawn earlier is put back, and the
    clinician is an agent of the Provenance of what this writes."""
    [planned] = plan(client, [assessment], recorded, settings=settings, decider=decider)
    [outcome] = write(client, [planned], settings=settings)
    return outcome


def _target(
    assessment: Assessment, recorded: datetime, settings: WriteSettings, decider: Decider | None
) -> Target:
    written = suggestions(
        assessment, recorded, claim_profiles=settings.claim_profiles, decider=decider
    )
    return Target(assessment.patient.removeprefix("Patient/"), written, accept=decider is not None)


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
    becomes ``revoked``, so do the requests it proposed (a MedicationRequest: ``cancelled``),
    and a Provenance records why and who.

    A later sync does not write the same suggestion again (the reading has not changed); a new
    reading is proposed as usual. Nothing to withdraw (already revoked, or another assessment
    is current) is a 409 :class:`~fhir_cml.errors.RequestError` saying so.
    """
    outcome = WriteOutcome(patient_id, fingerprint, "revoke")
    try:
        drafts = draft_suggestions(client, [patient_id], settings.fetch)
        found = [
            p
            for p in drafts
            if p.get("resourceType") == "CarePlan" and care_plan_fingerprint(p) == fingerprint
        ]
        if not found:
            raise RequestError(
                f"No draft suggestion of this assessment for Patient/{patient_id}: it was "
                "withdrawn or replaced meanwhile.",
                status=409,
                code="conflict",
            )
        where = local_reference(found[0])
        target = _put(client, _marked(found[0], "revoked", WITHDRAWN), found[0], "revoked")
        followed = _follow(client, found[0], drafts, ("draft",), "withdrawn", WITHDRAWN)
        provenance = build_revocation(
            target,
            recorded,
            reason,
            [decider.as_agent()] if decider else (),
            patient=f"Patient/{patient_id}",
            proposals=followed,
        )
        validate(provenance)
        client.create(provenance)
    except FhirClientError as err:
        outcome.ok = False
        outcome.error = err.message
        outcome.outcome = err.outcome
        return outcome
    outcome.updated += [where, *map(_unversioned, followed)]
    outcome.withdrawn = list(outcome.updated)
    outcome.care_plan = where
    return outcome


def accept(
    client: FhirClient,
    patient_id: str,
    fingerprint: str,
    recorded: datetime,
    *,
    decider: Decider,
    reason: str = "Accepted by the clinician",
) -> WriteOutcome:
    """A clinician accepts the suggestion of this assessment: its CarePlan, proposed
    (``draft``), is put in force (``active``: the request pattern's draft -> active; it stays a
    proposal, not an order; the requests it proposed follow), a suggestion accepted earlier for
    another reading is revoked with its requests and ``replaces`` names it, and a Provenance
    names the clinician as the one who decided.

    The CarePlan may have been written by this Accept (:func:`write_back`) or earlier by the
    nightly sync: either way the decision is recorded in the EHR. Already accepted: nothing is
    written (``unchanged``). Withdrawn (``revoked``) or not there: a 409
    :class:`~fhir_cml.errors.RequestError` saying so.
    """
    outcome = WriteOutcome(patient_id, fingerprint, "accept")
    try:
        read = list(
            client.search(
                "CarePlan",
                [
                    ("identifier", f"{c.ID_CARE_PLAN}|{fingerprint}"),
                    ("patient", patient_id),
                    SUGGESTION_REQUESTS,
                ],
            )
        )
        found = [
            r
            for r in read
            if r.get("resourceType") == "CarePlan" and care_plan_fingerprint(r) == fingerprint
        ]
        live = [r for r in found if r.get("status") in ("draft", "active")]
        if not live:
            raise RequestError(
                f"No suggestion of this assessment for Patient/{patient_id} can be accepted: it "
                "was withdrawn or replaced meanwhile.",
                status=409,
                code="conflict",
            )
        care_plan = live[0]
        where = local_reference(care_plan)
        outcome.care_plan = where
        if care_plan.get("status") == "active":
            outcome.action = "unchanged"
            outcome.existing.append(where)
            return outcome
        read_earlier = list(
            client.search(
                "CarePlan",
                [
                    ("patient", patient_id),
                    ("category", f"{c.CS_CML}|{c.CML_SUGGESTIONS}"),
                    ("status", "active"),
                    SUGGESTION_REQUESTS,
                ],
            )
        )
        earlier = [
            r
            for r in read_earlier
            if r.get("resourceType") == "CarePlan"
            and r.get("status") == "active"
            and care_plan_fingerprint(r) not in (None, fingerprint)
        ]
        replaces = list(care_plan.get("replaces") or [])
        replaces += [{"reference": local_reference(r)} for r in earlier]
        changed = _marked(care_plan, "active", ACCEPTED)
        if replaces:
            changed["replaces"] = replaces
        targets = [_put(client, changed, care_plan, "active")]
        in_force = _follow(client, care_plan, read, ("draft",), "active", ACCEPTED)
        withdrawn: list[str] = []
        for old in earlier:
            targets.append(_put(client, _marked(old, "revoked", REPLACED), old, "revoked"))
            withdrawn += _follow(
                client, old, read_earlier, ("draft", "active"), "withdrawn", REPLACED
            )
        outcome.updated += [where, *map(_unversioned, in_force)]
        outcome.withdrawn = [_unversioned(t) for t in (*targets[1:], *withdrawn)]
        outcome.updated += outcome.withdrawn
        provenance = build_acceptance(
            targets,
            recorded,
            reason,
            [decider.as_agent()],
            patient=f"Patient/{patient_id}",
            in_force=in_force,
            withdrawn=withdrawn,
        )
        validate(provenance)
        created = client.create(provenance)
    except FhirClientError as err:
        outcome.ok = False
        outcome.error = err.message
        outcome.outcome = err.outcome
        return outcome
    if isinstance(created, dict) and created.get("id"):
        outcome.created.append(f"Provenance/{created['id']}")
    return outcome


def _marked(care_plan: dict[str, Any], status: str, why: str) -> dict[str, Any]:
    """A copy of a CarePlan with a new status whose narrative says why."""
    changed = dict(care_plan, status=status)
    superseded(changed, why)
    return changed


def _follow(
    client: FhirClient,
    care_plan: dict[str, Any],
    read: Sequence[dict[str, Any]],
    current: tuple[str, ...],
    status: str,
    why: str,
) -> list[str]:
    """The requests a CarePlan proposed (``read`` with it) follow its new status, those still
    ``current`` each updated like the CarePlan; their new versions' references. ``status``
    "withdrawn" is each type's own (revoked; cancelled for a MedicationRequest)."""
    named = {k for k in proposal_keys(care_plan) if k[1] not in map(request_key, read)}
    read = [*read, *requests_by_key(client, named)]  # a CarePlan a CDS client created
    updated = []
    for request in proposed_requests(care_plan, read):
        if request.get("status") in current:
            changed = with_status(request, status, why)
            updated.append(_put(client, changed, request, str(changed["status"])))
    return updated


def _unversioned(reference: str) -> str:
    return reference.split("/_history/", 1)[0]


def _put(client: FhirClient, changed: dict[str, Any], read: dict[str, Any], status: str) -> str:
    """Updates a CarePlan (or a request it proposed) to ``status`` if it is still the version
    read; its new version's reference (read back: the answer to the update may carry no
    body)."""
    where = local_reference(read)
    version = (read.get("meta") or {}).get("versionId")
    client.request(
        "PUT",
        where,
        json=changed,
        headers={
            "Prefer": "return=minimal",
            **({"If-Match": f'W/"{version}"'} if version else {}),
        },
    )
    now = client.read(str(read["resourceType"]), str(read["id"]))
    if now.get("status") != status:
        raise FhirResponseError(f"update {where}: the server did not make it {status}")
    new_version = (now.get("meta") or {}).get("versionId")
    return f"{where}/_history/{new_version}" if new_version else where
