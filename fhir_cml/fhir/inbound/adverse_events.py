"""AdverseEvents: what happened, when, whether it affects quality of life, and whether it ended.

R4 AdverseEvent has no end date: an event whose outcome is resolved is taken as resolved on the
day the record was last updated (else on the day of the event), which is the latest day the record
itself supports.
"""

from __future__ import annotations

from typing import Any, Final

from fhir_cml.domain.model import AdverseEvent
from fhir_cml.domain.vocabulary import IssueCode
from fhir_cml.fhir.inbound.context import (
    MappingContext,
    as_dict,
    as_list,
    as_str,
    codings,
    concept_words,
)

_RESOLVED: Final = frozenset({"resolved", "resolvedWithSequelae"})


def map_adverse_event(res: dict[str, Any], ref: str, ctx: MappingContext) -> AdverseEvent | None:
    if res.get("actuality") == "potential":
        ctx.info(
            IssueCode.STATUS_IGNORED,
            "AdverseEvent is a potential event (actuality potential), not one that happened: "
            "left out.",
            ref,
        )
        return None
    for name in ("date", "detected", "recordedDate"):
        text = res.get(name)
        if text is not None:
            break
    else:
        ctx.warn(
            IssueCode.MISSING_DATE,
            "AdverseEvent has no date (date, detected or recordedDate): left out.",
            ref,
        )
        return None
    day = ctx.day(text, ref, f"AdverseEvent {name}")
    if day is None:
        return None
    severity = {code for _, code in codings(res.get("severity"))}
    severity_words = concept_words(res.get("severity"))
    mild = "mild" in severity or (not severity and "mild" in severity_words)
    resolved = None
    if any(code in _RESOLVED for _, code in codings(res.get("outcome"))):
        resolved = day
        updated = as_dict(res.get("meta")).get("lastUpdated")
        if updated is not None:
            later = ctx.day(updated, ref, "AdverseEvent meta.lastUpdated", future_ok=True)
            if later is not None and later > day:
                resolved = later
    return AdverseEvent(ref, day, _description(res), not mild, resolved)


def _description(res: dict[str, Any]) -> str:
    event = as_dict(res.get("event"))
    text = as_str(event.get("text"))
    if text:
        return text[:200]
    for coding in as_list(event.get("coding")):
        display = as_str(as_dict(coding).get("display"))
        if display:
            return display[:200]
    for _, code in codings(event):
        return f"adverse event {code[:40]}"
    return "adverse event (not described)"
