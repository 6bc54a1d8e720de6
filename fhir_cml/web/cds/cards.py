"""CDS Hooks cards from an assessment (patient-view) or an order finding (order-select/-sign).

Every card follows CDS Hooks 2.0: ``uuid`` (for feedback), a ``summary`` under 140 characters,
an ``indicator`` from the reading, ``detail`` in Markdown with the basis (statements, rules,
sources, result dates), ``source`` (label "fhir-cml (ELN 2020)", the rule's PlanDefinition as
served by this service, a topic coding), ``overrideReasons`` with displays, and a ``smart``
link to the SMART app. The patient-view card suggests creating the reading, the requests the
suggestions propose and the draft CarePlan (the resources the write-back writes); an order card about an order that should not go ahead suggests removing it. No
field is ever null or empty (omitted instead), as the specification requires.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from functools import cache
from typing import Any, Final

from fhir_cml import conformance
from fhir_cml.domain import Assessment
from fhir_cml.domain.basis import Basis
from fhir_cml.domain.vocabulary import ElnStatus, Recommendation, TdmStatus, TfrStatus
from fhir_cml.fhir import canonical as c
from fhir_cml.fhir.outbound import Written, standalone
from fhir_cml.fhir.outbound.requests import title_of
from fhir_cml.reporting import pct, suggestion_text
from fhir_cml.reporting.markdown import basis_line, sources, unique
from fhir_cml.reporting.summary import depth_words, milestone_words, status_parts
from fhir_cml.web.cds.orders import Finding
from fhir_cml.web.cds.services import MONITORING_TOPIC
from fhir_cml.web.settings import Settings

MAX_SUMMARY: Final = 139  # "<140-character summary"
LINK_LABEL: Final = "Open CML course"
# Override reasons offered on every card (published as a CodeSystem in profiles/).
OVERRIDE_SYSTEM: Final = c.CS_CDS_OVERRIDE_REASON
OVERRIDE_REASONS: Final = c.CDS_OVERRIDE_REASONS


def indicator(a: Assessment) -> str:
    """critical for an ELN failure; warning for warning/suboptimal, loss of MMR (also after a
    TKI stop) or an overdue PCR; info otherwise."""
    if a.eln.status is ElnStatus.FAILURE:
        return "critical"
    if (
        a.eln.status in (ElnStatus.WARNING, ElnStatus.SUBOPTIMAL)
        or a.loss_of_mmr.lost
        or a.tfr.status is TfrStatus.MOLECULAR_RELAPSE
        or a.monitoring.overdue
    ):
        return "warning"
    return "info"


def summary(a: Assessment) -> str:
    return shorten("CML: " + "; ".join(status_parts(a, next_pcr=False)))


def shorten(text: str) -> str:
    """At most 139 characters, cut at a word with an ellipsis."""
    if len(text) <= MAX_SUMMARY:
        return text
    cut = text[: MAX_SUMMARY - 1].rsplit(" ", 1)[0].rstrip(";,- ")
    return cut + "…"


def detail(a: Assessment) -> str:
    """The reading and its basis in GitHub-flavoured Markdown."""
    lines = [
        f"**CML reading as of {a.as_of.isoformat()}** ({a.guideline.label}, fhir-cml rules "
        f"{a.ruleset_version})",
        "",
    ]
    response = depth_words(a)
    latest = a.latest_bcr_abl1
    if latest is not None:
        value = pct(latest.is_percent) + " IS" if latest.is_percent is not None else "not on IS"
        response += f" - latest BCR::ABL1 {value} on {latest.date.isoformat()}"
    lines.append(f"- **Molecular response:** {response}")
    lines += _because([a.molecular_response.basis])
    eln = a.eln.status.value
    if a.eln.milestone is not None:
        eln += f" {milestone_words(a.eln.milestone)}"
    lines.append(f"- **{a.guideline.label}:** {eln}")
    lines += _because(a.eln.reasons)
    if a.loss_of_mmr.lost:
        state = "confirmed" if a.loss_of_mmr.confirmed else "not yet confirmed"
        lines.append(f"- **Loss of MMR:** {state}")
        lines += _because([a.loss_of_mmr.basis] if a.loss_of_mmr.basis else [])
    if a.tfr.status is not TfrStatus.NOT_EVALUABLE:
        lines.append(f"- **Treatment-free remission:** {a.tfr.status.value}")
        lines += _because(a.tfr.reasons)
    if a.tdm.status is not TdmStatus.NONE:
        lines.append(f"- **Imatinib trough:** {a.tdm.status.value}")
        lines += _because([a.tdm.basis] if a.tdm.basis else [])
    for interaction in a.interactions:
        lines.append(f"- **Interaction:** {interaction.medication} ({interaction.effect})")
        lines += _because([interaction.basis])
    if a.monitoring.next_pcr_due is not None:
        due = a.monitoring.next_pcr_due.isoformat()
        lines.append(
            f"- **Next RQ-PCR:** {'overdue since' if a.monitoring.overdue else 'due by'} {due}"
        )
    if a.recommendations:
        lines += ["", "**Suggestions** (for a clinician to review; not orders)", ""]
        for number, suggestion in enumerate(a.recommendations, 1):
            lines.append(f"{number}. {suggestion_text(suggestion)}")
            lines += [f"   - {basis_line(b)}" for b in unique(suggestion.basis)]
    lines += sources(
        [
            a.molecular_response.basis,
            *a.eln.reasons,
            *(s for r in a.recommendations for s in r.basis),
        ]
    )
    return "\n".join(lines)


def monitoring_card(a: Assessment, written: Written, settings: Settings) -> dict[str, Any]:
    """The patient-view card; its suggestion creates the reading, the requests the suggestions
    propose and the draft CarePlan: the same resources the write-back writes
    (:func:`fhir_cml.fhir.outbound.standalone`)."""
    risk_assessment, *requests, care_plan = standalone(written)
    rule = a.eln.reasons[0].rule.id if a.eln.reasons else a.molecular_response.basis.rule.id
    return {
        "uuid": str(uuid.uuid4()),
        "summary": summary(a),
        "indicator": indicator(a),
        "detail": detail(a),
        "source": _source(settings, rule, MONITORING_TOPIC),
        "suggestions": [
            {
                "label": (
                    "Add the CML reading and the suggested care plan (draft) to the chart"
                    if not requests
                    else "Add the CML reading, the suggested care plan and its proposals (drafts) "
                    "to the chart"
                ),
                "uuid": str(uuid.uuid4()),
                "isRecommended": True,
                "actions": [
                    {
                        "type": "create",
                        "description": "Record fhir-cml's CML response reading (RiskAssessment).",
                        "resource": risk_assessment,
                    },
                    *(
                        {
                            "type": "create",
                            "description": (
                                f"Propose {title_of(request)} as a draft "
                                f"{request['resourceType']} (intent proposal) for review; not "
                                "an order."
                            ),
                            "resource": request,
                        }
                        for request in requests
                    ),
                    {
                        "type": "create",
                        "description": (
                            "Propose the suggestions as a draft CarePlan for review; not orders."
                        ),
                        "resource": care_plan,
                    },
                ],
            }
        ],
        "selectionBehavior": "at-most-one",
        "overrideReasons": override_reasons(),
        "links": [smart_link(settings, a.patient, a.as_of.isoformat())],
    }


def order_card(finding: Finding, settings: Settings, as_of: str, patient: str) -> dict[str, Any]:
    """A card about one TKI order."""
    order = finding.order
    lines = [f"**{order.label.capitalize()}** ordered ({order.ref})", ""]
    lines += [f"- {basis_line(b)}" for b in unique(finding.basis)]
    for issue in order.issues:
        lines.append(f"- Reading the order: {issue.message}")
    lines += sources(finding.basis)
    card: dict[str, Any] = {
        "uuid": str(uuid.uuid4()),
        "summary": shorten(finding.summary),
        "indicator": finding.indicator,
        "detail": "\n".join(lines),
        "source": _source(settings, finding.check, _recommendation_topic(finding.topic)),
    }
    if finding.remove_order and order.ref.startswith("MedicationRequest/"):
        card["suggestions"] = [
            {
                "label": f"Remove the {order.label} order",
                "uuid": str(uuid.uuid4()),
                "actions": [
                    {
                        "type": "delete",
                        "description": f"Remove the draft order {order.ref}.",
                        "resourceId": order.ref,
                    }
                ],
            }
        ]
        card["selectionBehavior"] = "at-most-one"
    card["overrideReasons"] = override_reasons()
    card["links"] = [smart_link(settings, patient, as_of)]
    return card


def incomplete_card(
    settings: Settings, patient: str, as_of: str, missing: Sequence[str], *, kind: str
) -> dict[str, Any]:
    """A card saying that part of the patient's data did not arrive, so that nothing is read as
    if it were whole. ``kind``: ``reading`` (a CML patient: no reading is shown), ``unknown``
    (the data that would show CML did not arrive), ``orders`` (the order checks ran on part of
    the record)."""
    summary, indicator, lead = _INCOMPLETE[kind]
    lines = [lead, "", "**Not complete:**", ""]
    lines += [f"- {line}" for line in missing]
    lines += ["", _INCOMPLETE_FIX]
    card: dict[str, Any] = {
        "uuid": str(uuid.uuid4()),
        "summary": shorten(summary),
        "indicator": indicator,
        "detail": "\n".join(lines),
        "source": {"label": f"fhir-cml ({settings.guideline.label})", "topic": MONITORING_TOPIC},
    }
    if kind != "unknown":
        card["links"] = [smart_link(settings, patient, as_of)]
    return card


_INCOMPLETE: Final = {
    "reading": (
        "CML: no reading - part of this patient's data did not arrive from the EHR",
        "warning",
        "fhir-cml shows **no CML reading** for this patient: part of the data it reads did not "
        "arrive, and a reading made from part of the record can be wrong (the latest BCR::ABL1 "
        "result, or a change of TKI, may be in the part that is missing). Open the CML course "
        "for the whole record.",
    ),
    "unknown": (
        "fhir-cml could not check this patient for CML: the EHR's data did not all arrive",
        "info",
        "fhir-cml could not tell whether this patient has CML: the diagnoses or BCR::ABL1 "
        "results did not arrive, so no reading is shown.",
    ),
    "orders": (
        "CML order checks ran on part of the record: a check that found nothing may have "
        "missed something",
        "warning",
        "fhir-cml checked the TKI orders against **part** of this patient's record: the rest "
        "did not arrive. A warning shown still holds; the absence of a warning does not mean "
        "that none applies (a T315I result or an interacting medication may be in the part "
        "that is missing).",
    ),
}
_INCOMPLETE_FIX: Final = (
    "For the EHR's integration team: send each prefetch key in one page (no `next` link), or "
    "give `fhirServer` and `fhirAuthorization` so that fhir-cml can read the rest within its "
    "deadline."
)


def override_reasons() -> list[dict[str, str]]:
    return [
        {"code": code, "system": OVERRIDE_SYSTEM, "display": display}
        for code, display in OVERRIDE_REASONS
    ]


def smart_link(settings: Settings, patient: str, as_of: str) -> dict[str, str]:
    """The SMART app, launched by the EHR with its launch parameters; ``appContext`` says which
    reading the card showed."""
    return {
        "label": LINK_LABEL,
        "url": settings.smart_launch_url,
        "type": "smart",
        "appContext": json.dumps({"patient": patient, "asOf": as_of}, separators=(",", ":")),
    }


def _source(settings: Settings, rule_id: str, topic: dict[str, str]) -> dict[str, Any]:
    return {
        "label": f"fhir-cml ({settings.guideline.label})",
        "url": f"{settings.public_base_url}/fhir/PlanDefinition/{rule_id}",
        "topic": topic,
    }


def _recommendation_topic(code: Recommendation) -> dict[str, str]:
    return {
        "system": c.CS_RECOMMENDATION,
        "code": code.value,
        "display": _displays().get(code.value, code.value),
    }


@cache
def _displays() -> dict[str, str]:
    """The recommendation CodeSystem's displays, read once."""
    concepts = conformance.by_url(c.CS_RECOMMENDATION).get("concept", [])
    return {str(x["code"]): str(x.get("display", x["code"])) for x in concepts}


def _because(bases: Iterable[Basis]) -> list[str]:
    return [f"  - {basis_line(b)}" for b in unique(bases)]
