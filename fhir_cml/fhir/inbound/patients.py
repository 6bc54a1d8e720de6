"""The Patient (birth date, for the risk scores' age) and the CML diagnosis (Condition)."""

from __future__ import annotations

from datetime import date
from typing import Any, Final

from fhir_cml.domain.model import Diagnosis
from fhir_cml.domain.vocabulary import IssueCode, Phase
from fhir_cml.fhir import canonical as c
from fhir_cml.fhir.inbound.context import (
    MappingContext,
    as_dict,
    as_list,
    codings,
    concept_words,
)

_PHASES: Final = {
    "278177007": Phase.CHRONIC,
    "278179005": Phase.ACCELERATED,
    "255251009": Phase.BLAST,  # "Acute phase", the mCODE CML phase value set's blast phase
}
_PHASE_WORDS: Final = (
    ("chronic phase", Phase.CHRONIC),
    ("accelerated phase", Phase.ACCELERATED),
    ("blast phase", Phase.BLAST),
    ("blast crisis", Phase.BLAST),
)
_NOT_A_DIAGNOSIS: Final = frozenset({"refuted", "entered-in-error"})


def birth_date(res: dict[str, Any], ref: str, ctx: MappingContext) -> date | None:
    text = res.get("birthDate")
    if text is None:
        return None
    return ctx.day(text, ref, "Patient birthDate")


def is_cml(concept: Any) -> bool:
    """SNOMED CT 92818009, ICD-10 C92.1 (any national edition), or ICD-O-3 morphology 9875/3."""
    for system, code in codings(concept):
        if type(system) is not str:
            continue
        if system == c.SNOMED:
            if code == "92818009":
                return True
        elif code.startswith("C92.1") or code == "C921":
            lowered = system.lower()
            if system in (c.ICD10, c.ICD10_CM) or "icd-10" in lowered or "icd10" in lowered:
                return True
        elif code == "9875/3" and (system == c.ICD_O_3 or "icd-o" in system.lower()):
            return True
    return False


def is_cml_condition(res: dict[str, Any]) -> bool:
    return is_cml(res.get("code"))


def map_condition(res: dict[str, Any], ref: str, ctx: MappingContext) -> Diagnosis | None:
    if not is_cml(res.get("code")):
        ctx.count_not_read("Conditions other than CML")
        return None
    for _, code in codings(res.get("verificationStatus")):
        if code in _NOT_A_DIAGNOSIS:
            ctx.info(
                IssueCode.STATUS_IGNORED,
                f"CML Condition has verificationStatus {code}: left out.",
                ref,
            )
            return None
    onset_text = res.get("onsetDateTime")
    if onset_text is None:
        onset_text = as_dict(res.get("onsetPeriod")).get("start")
    onset = ctx.day(onset_text, ref, "CML onset") if onset_text is not None else None
    return Diagnosis(ref, _phase(res, ref, ctx), onset)


def _phase(res: dict[str, Any], ref: str, ctx: MappingContext) -> Phase | None:
    found: list[Phase] = []
    for stage in as_list(res.get("stage")):
        summary = as_dict(stage).get("summary")
        phase = None
        for system, code in codings(summary):
            if system == c.SNOMED and code in _PHASES:
                phase = _PHASES[code]
                break
        if phase is None:
            words = concept_words(summary)
            phase = next((p for word, p in _PHASE_WORDS if word in words), None)
        if phase is not None and phase not in found:
            found.append(phase)
    if len(found) > 1:
        ctx.warn(
            IssueCode.AMBIGUOUS,
            "CML Condition gives more than one phase ("
            + ", ".join(p.value for p in found)
            + f"): the first, {found[0].value}, is used.",
            ref,
        )
    return found[0] if found else None
