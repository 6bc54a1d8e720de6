"""BCR::ABL1 quantification: IS %, ratio, log reduction, non-IS with a conversion factor, and
results below the detection limit; control-gene copies and transcript type from components.
"""

from __future__ import annotations

import functools
import re
from datetime import date
from typing import Any, Final

from fhir_cml.domain.model import BcrAbl1Result
from fhir_cml.domain.vocabulary import ControlGene, IssueCode, Transcript
from fhir_cml.fhir import canonical as c
from fhir_cml.fhir.inbound import units
from fhir_cml.fhir.inbound.codes import Kind, Part, components
from fhir_cml.fhir.inbound.context import (
    MappingContext,
    as_dict,
    as_list,
    as_str,
    codings,
    concept_label,
    concept_words,
    has_code,
    number,
    quoted,
)
from fhir_cml.fhir.inbound.text_values import observed_quantity, quantity_from_text

MAX_PERCENT: Final = 1000.0  # IS % above this is not a measurement (diagnosis is ~100 %)
MAX_LOG_REDUCTION: Final = 10.0
MIN_LOG_REDUCTION: Final = -1.0  # 1000 %
MAX_CONVERSION_FACTOR: Final = 100.0
NOT_DETECTED: Final = "260415000"
DETECTED: Final = "260373001"
_NOT_DETECTED_WORDS: Final = (
    "not detected",
    "undetectable",
    "undetected",
    "not detectable",
    "below the detection limit",
    "below detection limit",
    "below the limit of detection",
    "below limit of detection",
)
_DETECTED_WORDS: Final = ("detected", "positive")
_ND_INTERPRETATIONS: Final = frozenset({"ND", "<"})
_LOG_UNITS: Final = frozenset({"1", "log", "{log}", "[lg]", "{log_reduction}", "{log reduction}"})
_TRANSCRIPT_WORDS: Final = (
    (("e13a2", "e14a2"), Transcript.E13A2_E14A2),
    (("b2a2", "b3a2"), Transcript.E13A2_E14A2),
    (("e13a2",), Transcript.E13A2),
    (("b2a2",), Transcript.E13A2),
    (("e14a2",), Transcript.E14A2),
    (("b3a2",), Transcript.E14A2),
    (("e1a2",), Transcript.E1A2),
    (("p190",), Transcript.E1A2),
    (("atypical",), Transcript.ATYPICAL),
    (("e19a2",), Transcript.ATYPICAL),
    (("p230",), Transcript.ATYPICAL),
    (("e13a3",), Transcript.ATYPICAL),
    (("e14a3",), Transcript.ATYPICAL),
)


_CONTROLS: Final = (
    (Part.ABL1_COPIES, ControlGene.ABL1, "ABL1 copies"),
    (Part.GUSB_COPIES, ControlGene.GUSB, "GUSB copies"),
)
_NO_PARTS: Final[dict[Part, dict[str, Any]]] = {}
_CS_TRANSCRIPT: Final = c.CS_TRANSCRIPT
_TRANSCRIPTS: Final = {t.value: t for t in Transcript}


# (detectable, percent on the laboratory's scale (the limit when not detected), derived from,
# control-gene copies of a ratio); a plain tuple, as this is built for every result.
Reading = tuple[bool, float | None, str, float | None]


_NOT_DETECTED_SEARCH: Final = re.compile("|".join(map(re.escape, _NOT_DETECTED_WORDS))).search


def not_detected_words(words: str) -> bool:
    """Whether lower-case text says "not detected" in any of the usual ways (one regex pass)."""
    return _NOT_DETECTED_SEARCH(words) is not None


def transcript_of(holder: dict[str, Any]) -> Transcript | None:
    """The transcript named by a value: a bcr-abl1-transcript code, or text (b2a2 = e13a2)."""
    concept = holder.get("valueCodeableConcept")
    if type(concept) is dict:
        for coding in as_list(concept.get("coding")):
            if type(coding) is dict and coding.get("system") == _CS_TRANSCRIPT:
                code = coding.get("code")
                found = _TRANSCRIPTS.get(code) if type(code) is str else None
                if found is not None:
                    return found
    words = concept_words(concept)
    text = holder.get("valueString")
    if type(text) is str:
        words = f"{words} {text.lower()}"
    words = words.replace(" ", "")
    for needles, transcript in _TRANSCRIPT_WORDS:
        if all(needle in words for needle in needles):
            return transcript
    return None


def map_bcr_abl1(
    res: dict[str, Any], ref: str, day: date, kind: Kind, ctx: MappingContext
) -> BcrAbl1Result | None:
    reading = _reading(res, kind, ref, ctx)
    if reading is None:
        return None
    detectable, raw, derived, denominator = reading
    parts = components(res) if "component" in res else _NO_PARTS
    gene, copies = _control(parts, denominator, ref, ctx)
    if kind is Kind.BCR_E1A2:
        transcript: Transcript | None = Transcript.E1A2
    else:
        transcript = _transcript(parts, ref, ctx)
    on_is = kind is Kind.BCR_IS or kind is Kind.BCR_LOG
    is_percent = raw if on_is else None
    factor: float | None = None
    if kind is Kind.BCR_NOT_IS:
        factor = _conversion_factor(parts, ref, ctx)
        if factor is None and ctx.conversion_factor is not None:
            factor = ctx.conversion_factor
            ctx.info(
                IssueCode.NOT_ON_IS,
                f"Result is not on the International Scale: converted with the clinic's "
                f"conversion factor {factor:g} (configured), as the result carries none.",
                ref,
            )
        if factor is not None:
            on_is = True
            is_percent = raw * factor if raw is not None else None
    return BcrAbl1Result(
        ref,
        day,
        detectable,
        is_percent,
        on_is,
        raw,
        factor,
        gene,
        copies,
        transcript,
        derived,
    )


def _reading(res: dict[str, Any], kind: Kind, ref: str, ctx: MappingContext) -> Reading | None:
    value = res.get("valueQuantity")
    if value is not None:
        return _from_quantity(res, value, kind, ref, ctx)
    value = res.get("valueRatio")
    if value is not None:
        return _from_ratio(value, ref, ctx)
    value = res.get("valueCodeableConcept")
    if value is not None:
        return _from_concept(value, ref, ctx)
    value = res.get("valueString")
    if value is not None:
        if type(value) is str and not_detected_words(value.lower()):
            return (False, None, "undetectable", None)
        parsed = quantity_from_text(value)
        if parsed.quantity is not None:
            return _from_quantity(res, parsed.quantity, kind, ref, ctx)
        ctx.warn(
            IssueCode.MISSING_VALUE,
            f"BCR::ABL1 result has the text {quoted(value)}, which {parsed.problem}: left out.",
            ref,
        )
        return None
    if interpreted_not_detected(res):
        return (False, None, "undetectable", None)
    absent = res.get("dataAbsentReason")
    if absent is not None:
        words = concept_words(absent)
        if not_detected_words(words):
            return (False, None, "undetectable", None)
        ctx.warn(
            IssueCode.MISSING_VALUE,
            f"BCR::ABL1 result has no value (dataAbsentReason {_absent_label(absent)}): left out.",
            ref,
        )
        return None
    ctx.warn(IssueCode.MISSING_VALUE, "BCR::ABL1 result has no value: left out.", ref)
    return None


def _from_quantity(
    res: dict[str, Any], value: Any, kind: Kind, ref: str, ctx: MappingContext
) -> Reading | None:
    quantity = units.quantity(value)
    if quantity is None:
        ctx.warn(
            IssueCode.MISSING_VALUE,
            "BCR::ABL1 valueQuantity has no numeric value: left out.",
            ref,
        )
        return None
    amount, unit, comparator = quantity
    if kind is Kind.BCR_NOT_IS and units.names_is(unit):
        ctx.warn(
            IssueCode.AMBIGUOUS,
            f"BCR::ABL1 result is coded as not on the International Scale but its unit "
            f"{quoted(unit)} says IS: left out (correct the code or the unit).",
            ref,
        )
        return None
    below = comparator in ("<", "<=")
    above = comparator in (">", ">=")
    if kind is Kind.BCR_LOG:
        if unit is not None and unit not in _LOG_UNITS and not units.is_count(unit):
            ctx.warn(
                IssueCode.UNKNOWN_UNIT,
                f"BCR::ABL1 log reduction has the unit {quoted(unit)}; a log reduction has no "
                "unit (or 1): left out.",
                ref,
            )
            return None
        if not MIN_LOG_REDUCTION <= amount <= MAX_LOG_REDUCTION:
            ctx.warn(
                IssueCode.OUT_OF_RANGE,
                f"BCR::ABL1 log reduction {amount:g} is outside {MIN_LOG_REDUCTION:g} to "
                f"{MAX_LOG_REDUCTION:g}: left out; check the value.",
                ref,
            )
            return None
        percent = 100.0 / 10.0**amount
        # A deeper reduction than reported (">4.5") is a result below the detection limit.
        below, above = above, below
        derived = "log-reduction"
    else:
        factor = units.factor(unit, "%")
        if factor is None:
            ctx.warn(
                IssueCode.UNKNOWN_UNIT,
                f"BCR::ABL1 unit {quoted(unit)} cannot be converted to % (UCUM): left out.",
                ref,
            )
            return None
        percent = amount * factor
        if not 0.0 <= percent <= MAX_PERCENT:
            ctx.warn(
                IssueCode.OUT_OF_RANGE,
                f"BCR::ABL1 {percent:g} % is outside 0-{MAX_PERCENT:g} %: left out; check the "
                "value and its unit.",
                ref,
            )
            return None
        derived = "percent"
    if below or ("interpretation" in res and interpreted_not_detected(res)):
        if percent > 0:
            return (False, percent, "limit", None)
        return (False, None, "undetectable", None)
    if percent == 0:
        return (False, None, "undetectable", None)
    if above:
        ctx.info(
            IssueCode.AMBIGUOUS,
            f"BCR::ABL1 reported as {comparator} {amount:g}: the bound is used as the value.",
            ref,
        )
    return (True, percent, derived, None)


def _from_ratio(value: Any, ref: str, ctx: MappingContext) -> Reading | None:
    ratio = as_dict(value)
    top = units.quantity(ratio.get("numerator"))
    bottom = units.quantity(ratio.get("denominator"))
    if top is None or bottom is None:
        ctx.warn(
            IssueCode.MISSING_VALUE,
            "BCR::ABL1 valueRatio lacks a numeric numerator or denominator: left out.",
            ref,
        )
        return None
    numerator, denominator = top[0], bottom[0]
    if numerator < 0 or denominator <= 0:
        ctx.warn(
            IssueCode.OUT_OF_RANGE,
            f"BCR::ABL1 ratio {numerator:g}/{denominator:g} is not a copy-number ratio "
            "(negative or zero control copies): left out.",
            ref,
        )
        return None
    percent = numerator / denominator * 100.0
    if percent > MAX_PERCENT:
        ctx.warn(
            IssueCode.OUT_OF_RANGE,
            f"BCR::ABL1 ratio {numerator:g}/{denominator:g} is {percent:g} %, above "
            f"{MAX_PERCENT:g} %: left out; check the value.",
            ref,
        )
        return None
    if numerator == 0:
        return (False, None, "undetectable", denominator)
    return (True, percent, "ratio", denominator)


def _from_concept(value: Any, ref: str, ctx: MappingContext) -> Reading | None:
    words = concept_words(value)
    if has_code(value, c.SNOMED, NOT_DETECTED) or not_detected_words(words):
        return (False, None, "undetectable", None)
    if has_code(value, c.SNOMED, DETECTED) or any(word in words for word in _DETECTED_WORDS):
        ctx.warn(
            IssueCode.MISSING_VALUE,
            "BCR::ABL1 reported as detected without a quantity: left out (a response level "
            "needs the value).",
            ref,
        )
        return None
    ctx.warn(
        IssueCode.UNKNOWN_CODE,
        f"BCR::ABL1 valueCodeableConcept {concept_label(value)} is not a known result (SNOMED CT "
        f"{NOT_DETECTED} Not detected is): left out.",
        ref,
    )
    return None


def interpreted_not_detected(res: dict[str, Any]) -> bool:
    """Whether Observation.interpretation says "not detected" (ND, <, or in words)."""
    if "interpretation" not in res:
        return False
    for concept in as_list(res.get("interpretation")):
        if type(concept) is not dict:
            continue
        text = concept.get("text")
        if type(text) is str and _says_not_detected(text):
            return True
        for coding in as_list(concept.get("coding")):
            if type(coding) is dict:
                code = coding.get("code")
                if (
                    type(code) is str
                    and code in _ND_INTERPRETATIONS
                    and coding.get("system") in (c.V3_INTERPRETATION, None)
                ):
                    return True
                display = coding.get("display")
                if type(display) is str and _says_not_detected(display):
                    return True
    return False


@functools.lru_cache(maxsize=10_000)  # interpretations repeat a few texts
def _says_not_detected(text: str) -> bool:
    return not_detected_words(text.lower())


def _absent_label(concept: Any) -> str:
    text = as_str(as_dict(concept).get("text"))
    if text:
        return quoted(text, 80)
    for _, code in codings(concept):
        return code[:40]
    return "without a code"


def _control(
    parts: dict[Part, dict[str, Any]], denominator: float | None, ref: str, ctx: MappingContext
) -> tuple[ControlGene | None, int | None]:
    for part, gene, what in _CONTROLS:
        comp = parts.get(part)
        if comp is not None:
            copies = count(comp, what, ref, ctx)
            if copies is not None:
                return gene, copies
    if denominator is not None:
        return None, round(denominator)
    return None, None


def count(comp: dict[str, Any], what: str, ref: str, ctx: MappingContext) -> int | None:
    """A whole count from valueInteger or a unitless/annotated valueQuantity."""
    found = read_count(comp)
    if isinstance(found, int):
        return found
    code, problem = found
    ctx.warn(code, f"{what} {problem}", ref)
    return None


def read_count(comp: dict[str, Any]) -> int | tuple[IssueCode, str]:
    """The count, or the issue code and what is wrong with it (without reporting it)."""
    value = comp.get("valueInteger")
    amount: float | None
    if value is not None:
        amount = number(value)
    else:
        quantity = units.quantity(observed_quantity(comp)[0])
        amount = quantity[0] if quantity else None
        if quantity is not None and not units.is_count(quantity[1]):
            return (
                IssueCode.UNKNOWN_UNIT,
                f"has the unit {quoted(quantity[1])}; a count has none (or {{copies}}): not used.",
            )
    if amount is None:
        return IssueCode.MISSING_VALUE, "has no numeric value: not used."
    if amount < 0:
        return IssueCode.OUT_OF_RANGE, f"is negative ({amount:g}): not used."
    return round(amount)


def _conversion_factor(
    parts: dict[Part, dict[str, Any]], ref: str, ctx: MappingContext
) -> float | None:
    comp = parts.get(Part.CONVERSION_FACTOR)
    if comp is None:
        return None
    quantity = units.quantity(comp.get("valueQuantity"))
    amount = quantity[0] if quantity else None
    if amount is None:
        ctx.warn(IssueCode.MISSING_VALUE, "Conversion factor has no numeric value: not used.", ref)
        return None
    if not 0 < amount <= MAX_CONVERSION_FACTOR:
        ctx.warn(
            IssueCode.OUT_OF_RANGE,
            f"Conversion factor {amount:g} is outside 0-{MAX_CONVERSION_FACTOR:g}: not used.",
            ref,
        )
        return None
    return amount


def _transcript(
    parts: dict[Part, dict[str, Any]], ref: str, ctx: MappingContext
) -> Transcript | None:
    comp = parts.get(Part.TRANSCRIPT)
    if comp is None:
        return None
    found = transcript_of(comp)
    if found is None:
        ctx.warn(
            IssueCode.UNKNOWN_CODE,
            f"Transcript type {concept_label(comp.get('valueCodeableConcept'))} is not one of "
            "e13a2, e14a2, e13a2+e14a2, e1a2, atypical: not used.",
            ref,
        )
    return found
