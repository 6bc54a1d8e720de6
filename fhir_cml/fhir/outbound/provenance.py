"""A Provenance for what one assessment writes (profile cml-provenance, docs/outbound.md).

The domain has no clock, so the moment of writing (``recorded``) comes from the caller; it must be
timezone-aware because FHIR ``instant`` requires a zone. The activity recorded is the writing, so
``occurred[x]`` is that moment too; the as-of date of the reading is in the ``as-of`` extension.
fhir-cml itself is always the ``assembler``; a clinician whose decision led to the write (Accept
in the SMART app) is a further agent, so the record says who decided as well as what computed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from fhir_cml.domain.results import Assessment
from fhir_cml.fhir.canonical import PROFILE_PROVENANCE, PROVENANCE_ACTIVITY, PROVENANCE_PARTICIPANT
from fhir_cml.fhir.outbound.elements import as_of_extension, concept
from fhir_cml.fhir.outbound.identifiers import input_reference, reference, software
from fhir_cml.fhir.outbound.narrative import acceptance_text, provenance_text, revocation_text


def instant(moment: datetime) -> str:
    """A FHIR instant; a naive datetime is refused rather than guessed at."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("recorded must be a timezone-aware datetime (FHIR instant needs a zone)")
    return moment.isoformat(timespec="seconds")


def agent(who: dict[str, Any], role: str) -> dict[str, Any]:
    """A Provenance agent: ``who`` (a Reference) in ``role`` (provenance-participant-type)."""
    return {"type": concept(PROVENANCE_PARTICIPANT, role), "who": who}


def build_provenance(
    assessment: Assessment,
    targets: Sequence[str],
    recorded: datetime,
    agents: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """``targets``: references of the RiskAssessment and CarePlan being written; ``agents``:
    further agents (see :func:`agent`) after fhir-cml's own."""
    a = assessment
    resource: dict[str, Any] = {
        "resourceType": "Provenance",
        "meta": {"profile": [PROFILE_PROVENANCE]},
        "text": provenance_text(a, recorded, len(targets)),
        "extension": [as_of_extension(a)],
        "target": [reference(t) for t in targets],
        "occurredDateTime": instant(recorded),
        "recorded": instant(recorded),
        "activity": concept(PROVENANCE_ACTIVITY, "CREATE", "create"),
        "agent": [
            {
                "type": concept(PROVENANCE_PARTICIPANT, "assembler", "Assembler"),
                "who": software(a.ruleset_version),
            },
            *agents,
        ],
    }
    if a.inputs:
        resource["entity"] = [{"role": "source", "what": input_reference(ref)} for ref in a.inputs]
    return resource


def build_revocation(
    target: str,
    recorded: datetime,
    reason: str,
    agents: Sequence[dict[str, Any]] = (),
    patient: str | None = None,
    proposals: Sequence[str] = (),
) -> dict[str, Any]:
    """The Provenance of a suggestion withdrawn (a clinician dismissed it): ``target`` the
    CarePlan revoked (``CarePlan/<id>/_history/<version>`` when known), ``proposals`` the
    requests it proposed, withdrawn with it, ``reason`` in words. ``patient``
    (``Patient/<id>``) is named as its source entity, which keeps the record in the patient's
    compartment (a SMART app's patient-scoped token may write it)."""
    resource: dict[str, Any] = {
        "resourceType": "Provenance",
        "text": revocation_text(target, recorded, reason, proposals),
        "target": [reference(t) for t in (target, *proposals)],
        "recorded": instant(recorded),
        "activity": concept(PROVENANCE_ACTIVITY, "UPDATE", "revise"),
        "reason": [{"text": reason}],
        "agent": [
            {
                "type": concept(PROVENANCE_PARTICIPANT, "assembler", "Assembler"),
                "who": software(),
            },
            *agents,
        ],
    }
    if patient is not None:
        resource["entity"] = [{"role": "source", "what": reference(patient)}]
    return resource


def build_acceptance(
    targets: Sequence[str],
    recorded: datetime,
    reason: str,
    agents: Sequence[dict[str, Any]],
    patient: str | None = None,
    *,
    in_force: Sequence[str] = (),
    withdrawn: Sequence[str] = (),
) -> dict[str, Any]:
    """The Provenance of a suggestion a clinician accepted: ``targets`` the CarePlan put in
    force (``active``; its version when known), then those it replaced (revoked); ``in_force``
    the requests the accepted one proposes (active with it), ``withdrawn`` those of the ones
    replaced; ``agents`` the clinician who decided."""
    resource = build_revocation(targets[0], recorded, reason, agents, patient)
    resource["target"] = [reference(t) for t in (*targets, *in_force, *withdrawn)]
    resource["text"] = acceptance_text(targets, recorded, reason, in_force, withdrawn)
    return resource
