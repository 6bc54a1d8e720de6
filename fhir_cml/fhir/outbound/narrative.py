"""Human-readable narratives (``text``) for what fhir-cml writes.

EHRs that show a resource's ``text.div`` show this and nothing else, so each narrative states the
reading, the suggestions, the as-of date and that the suggestions are not orders. Everything
interpolated is escaped, and characters XML cannot carry are dropped, so the ``div`` is always
well-formed FHIR XHTML: one ``<div>`` in the XHTML namespace holding only basic formatting
elements, without attributes.

The words are the reporting renderers' (:mod:`fhir_cml.reporting`: a basis's sentence, a
suggestion's, the milestone), so the narrative says what the text report, the JSON contract and
the CDS cards say; this module only lays them out as XHTML.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Final

from fhir_cml.domain.basis import Basis
from fhir_cml.domain.results import Assessment
from fhir_cml.domain.vocabulary import ElnStatus, TdmStatus, TfrStatus
from fhir_cml.reporting import pct, say, suggestion_text
from fhir_cml.reporting.summary import milestone_words

XHTML_NS: Final = "http://www.w3.org/1999/xhtml"
NOT_ORDERS: Final = "Suggestions from fhir-cml for a clinician to review; not orders."
# Characters XML 1.0 cannot carry (C0 controls but tab/newline/CR, surrogates, U+FFFE/U+FFFF).
_NOT_XML: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")

Markup = str  # an XHTML fragment that is already escaped


def escape(text: object) -> Markup:
    """``text`` as XHTML character data: escaped, with characters XML cannot carry removed."""
    return html.escape(_NOT_XML.sub("", str(text)), quote=True)


def element(tag: str, *children: Markup) -> Markup:
    return f"<{tag}>{''.join(children)}</{tag}>"


def p(*children: Markup) -> Markup:
    return element("p", *children)


def b(text: object) -> Markup:
    return element("b", escape(text))


def items(tag: str, entries: Iterable[Markup]) -> Markup:
    """A list (``ul`` or ``ol``) of already-escaped entries; empty when there is none."""
    body = "".join(element("li", e) for e in entries)
    return element(tag, body) if body else ""


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> Markup:
    head = element("tr", *(element("th", escape(h)) for h in header))
    body = "".join(element("tr", *(element("td", escape(v)) for v in row)) for row in rows)
    return element("table", head, body)


def narrative(*blocks: Markup) -> dict[str, Any]:
    """A Narrative (status generated) of the given blocks."""
    return {
        "status": "generated",
        "div": f'<div xmlns="{XHTML_NS}">{"".join(x for x in blocks if x)}</div>',
    }


def basis_text(basis: Basis) -> str:
    """The sentence a conclusion rests on, as a clinician reads it."""
    return say(basis)


def milestone_text(a: Assessment) -> str:
    return f" {milestone_words(a.eln.milestone)}" if a.eln.milestone is not None else ""


def heading(a: Assessment, what: str) -> Markup:
    return p(
        b(f"{what} as of {a.as_of.isoformat()}"),
        escape(f" ({a.guideline.label}; fhir-cml rules {a.ruleset_version})"),
    )


def reading_items(a: Assessment) -> list[Markup]:
    """The reading, one line per conclusion, each followed by what it rests on."""
    out: list[Markup] = []
    depth = a.molecular_response.depth.value
    latest = a.latest_bcr_abl1
    if latest is not None and latest.is_percent is not None:
        depth += f" (BCR::ABL1 {pct(latest.is_percent)} IS on {latest.date.isoformat()})"
    out.append(_line("Molecular response", depth, [a.molecular_response.basis]))
    eln = a.eln.status.value + (
        milestone_text(a) if a.eln.status is not ElnStatus.NOT_EVALUABLE else ""
    )
    out.append(_line(a.guideline.label, eln, a.eln.reasons))
    if a.loss_of_mmr.lost:
        state = "confirmed" if a.loss_of_mmr.confirmed else "not yet confirmed"
        out.append(
            _line("Loss of MMR", state, [a.loss_of_mmr.basis] if a.loss_of_mmr.basis else [])
        )
    if a.tfr.status is not TfrStatus.NOT_EVALUABLE or a.tfr.reasons:
        out.append(_line("Treatment-free remission", a.tfr.status.value, a.tfr.reasons))
    if a.tdm.status is not TdmStatus.NONE:
        out.append(
            _line("Imatinib trough", a.tdm.status.value, [a.tdm.basis] if a.tdm.basis else [])
        )
    for interaction in a.interactions:
        out.append(
            _line(
                "Interaction",
                f"{interaction.medication} ({interaction.effect})",
                [interaction.basis],
            )
        )
    due = a.monitoring.next_pcr_due
    if due is not None:
        when = (
            f"overdue since {due.isoformat()}"
            if a.monitoring.overdue
            else f"due by {due.isoformat()}"
        )
        out.append(_line("Next RQ-PCR", when, []))
    return out


def suggestion_items(a: Assessment) -> list[Markup]:
    return [escape(suggestion_text(s)) for s in a.recommendations]


def suggestions_block(a: Assessment) -> Markup:
    if not a.recommendations:
        return p(escape("No suggestion."))
    return p(b("Suggestions")) + items("ol", suggestion_items(a))


def risk_assessment_text(a: Assessment) -> dict[str, Any]:
    return narrative(
        heading(a, "CML response reading"),
        items("ul", reading_items(a)),
        suggestions_block(a),
        p(escape(NOT_ORDERS)),
    )


def care_plan_text(a: Assessment) -> dict[str, Any]:
    return narrative(
        heading(a, "CML suggestions"),
        p(escape(NOT_ORDERS)),
        suggestions_block(a),
        p(b("Reading: "), escape(reading_summary(a))),
    )


PROPOSAL: Final = (
    "A proposal from fhir-cml for a clinician to review; not an order until a clinician places one."
)


def request_text(
    a: Assessment, title: str, said: Sequence[str], details: Sequence[str], bases: Sequence[Basis]
) -> dict[str, Any]:
    """The narrative of a proposed request: what it proposes, for which suggestion(s), the
    details it carries (dose, due date, options) and what it rests on."""
    return narrative(
        heading(a, title),
        p(escape(PROPOSAL)),
        items("ul", (escape(x) for x in said)),
        items("ul", (escape(x) for x in details)),
        p(b("Because")) + items("ul", (escape(basis_text(x)) for x in bases)) if bases else "",
    )


def provenance_text(a: Assessment, recorded: datetime, targets: int) -> dict[str, Any]:
    inputs = len(a.inputs)
    return narrative(
        p(
            escape(
                f"Written by fhir-cml (rules {a.ruleset_version}, {a.guideline.label}) on "
                f"{recorded.isoformat(timespec='seconds')}: {targets} resources reading the "
                f"record as of {a.as_of.isoformat()}, from {inputs} input "
                f"resource{'' if inputs == 1 else 's'} (listed as entities)."
            )
        ),
        p(escape(NOT_ORDERS)),
    )


def revocation_text(
    target: str, recorded: datetime, reason: str, proposals: Sequence[str] = ()
) -> dict[str, Any]:
    """The narrative of the Provenance of a suggestion withdrawn by a clinician."""
    said = (
        f"Withdrawn on {recorded.isoformat(timespec='seconds')}: the fhir-cml suggestions "
        f"{target} are no longer proposed"
    )
    said += f", nor the requests they proposed ({', '.join(proposals)})." if proposals else "."
    return narrative(p(escape(said)), p(b("Reason: "), escape(reason)))


def acceptance_text(
    targets: Sequence[str],
    recorded: datetime,
    reason: str,
    in_force: Sequence[str] = (),
    withdrawn: Sequence[str] = (),
) -> dict[str, Any]:
    """The narrative of the Provenance of a suggestion a clinician accepted."""
    accepted, *replaced = targets
    said = (
        f"Accepted on {recorded.isoformat(timespec='seconds')}: the fhir-cml suggestions "
        f"{accepted} were accepted by a clinician."
    )
    if in_force:
        said += f" The requests they propose are accepted with them: {', '.join(in_force)}."
    if replaced:
        said += f" Replaced: {', '.join(replaced)}."
    if withdrawn:
        said += f" Withdrawn with what was replaced: {', '.join(withdrawn)}."
    return narrative(p(escape(said)), p(b("Reason: "), escape(reason)), p(escape(NOT_ORDERS)))


def reading_summary(a: Assessment) -> str:
    """The reading in one sentence (also the CarePlan's description)."""
    parts = [
        f"Molecular response {a.molecular_response.depth.value}",
        f"{a.guideline.label} {a.eln.status.value}{milestone_text(a)}",
        f"TFR {a.tfr.status.value}",
        f"TDM {a.tdm.status.value}",
    ]
    due = a.monitoring.next_pcr_due
    if due is not None:
        parts.append(
            f"RQ-PCR overdue since {due.isoformat()}"
            if a.monitoring.overdue
            else f"next RQ-PCR by {due.isoformat()}"
        )
    return "; ".join(parts) + "."


SUPERSEDED: Final = "Superseded by a later fhir-cml assessment; no longer current."
WITHDRAWN: Final = "Withdrawn by a clinician; no longer proposed."
REPLACED: Final = "Replaced by a suggestion a clinician accepted; no longer current."
ACCEPTED: Final = (
    "Accepted by a clinician. Still suggestions, not orders: any order is placed by the clinician."
)


def superseded(resource: dict[str, Any], why: str = SUPERSEDED) -> None:
    """Says in the narrative of a CarePlan whose status changed (revoked, accepted) or a replaced
    RiskAssessment what happened to it (in place; a narrative that already says so is left
    alone)."""
    text = resource.get("text")
    if not isinstance(text, dict):
        return
    div = text.get("div")
    opening = f'<div xmlns="{XHTML_NS}">'
    if isinstance(div, str) and div.startswith(opening) and why not in div:
        resource["text"] = {
            "status": text.get("status", "generated"),
            "div": opening + p(b(why)) + div[len(opening) :],
        }


def _line(label: str, value: str, bases: Iterable[Basis | None]) -> Markup:
    reasons = list(dict.fromkeys(basis_text(x) for x in bases if x is not None))
    line = b(f"{label}:") + escape(f" {value}")
    if reasons:
        line += items("ul", (escape(r) for r in reasons))
    return line
