"""Observations: status and date first (cheap rejections), then one mapper per kind of result.

BCR::ABL1 and mutation analyses have modules of their own; cytogenetics, blood counts, the CHR
finding, the trough level, adherence and the transcript type are here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from fhir_cml.domain.model import (
    AdherenceAssessment,
    CytogeneticResult,
    HematologicResponse,
    LabValue,
    TroughLevel,
)
from fhir_cml.domain.vocabulary import IssueCode, Transcript
from fhir_cml.fhir import canonical as c
from fhir_cml.fhir.inbound import units
from fhir_cml.fhir.inbound.bcr_abl1 import count, map_bcr_abl1, transcript_of
from fhir_cml.fhir.inbound.codes import (
    BCR_ABL1_KINDS,
    CML_EVIDENCE_KINDS,
    LAB_KINDS,
    Kind,
    Part,
    components,
    kind_of,
)
from fhir_cml.fhir.inbound.conceptmaps import is_local
from fhir_cml.fhir.inbound.context import (
    MappingContext,
    as_dict,
    codings,
    concept_label,
    quoted,
)
from fhir_cml.fhir.inbound.identity import USED_STATUSES, Candidate
from fhir_cml.fhir.inbound.mutations import map_mutation
from fhir_cml.fhir.inbound.text_values import observed_quantity


@dataclass(frozen=True, slots=True)
class TranscriptFinding:
    ref: str
    date: date
    transcript: Transcript


LOCAL_CODE: Final = "Observations with the site's own code"
LABELS: Final = {
    Kind.BCR_IS: "BCR::ABL1 result",
    Kind.BCR_NOT_IS: "BCR::ABL1 result",
    Kind.BCR_LOG: "BCR::ABL1 result",
    Kind.BCR_E1A2: "BCR::ABL1 e1a2 result",
    Kind.TRANSCRIPT: "Transcript type",
    Kind.PH_METAPHASES: "Ph+ metaphases",
    Kind.PH_CELLS: "t(9;22) cells",
    Kind.WBC: "WBC",
    Kind.PLATELETS: "Platelets",
    Kind.BASOPHILS: "Basophils",
    Kind.BLASTS: "Blasts",
    Kind.SPLEEN: "Spleen size",
    Kind.CHR: "Hematologic response",
    Kind.TROUGH: "Imatinib trough level",
    Kind.MUTATION: "Mutation analysis",
    Kind.ADHERENCE: "Adherence",
}
# Canonical unit and plausible range of each blood count or finding (values outside are errors).
LAB_UNITS: Final = {
    Kind.WBC: ("10*9/L", 0.0, 1000.0),
    Kind.PLATELETS: ("10*9/L", 0.0, 10000.0),
    Kind.BASOPHILS: ("%", 0.0, 100.0),
    Kind.BLASTS: ("%", 0.0, 100.0),
    Kind.SPLEEN: ("cm", 0.0, 50.0),
}
MAX_TROUGH_NG_ML: Final = 100_000.0
MAX_HOURS_SINCE_DOSE: Final = 240.0
# A sample taken and analysed, with a result not (yet) final: a test was done.
_DONE_STATUSES: Final = frozenset({"preliminary", "registered"})
_ADHERENT: Final = frozenset({"1156699004"})
_NOT_ADHERENT: Final = frozenset({"702565001", "715036001", "275928001", "129834002", "448176008"})


def map_observation(
    res: dict[str, Any], ref: str, ctx: MappingContext, order: int
) -> Candidate | None:
    concept = res.get("code")
    kind = kind_of(concept)
    if kind is None:
        first = next(codings(concept), None)
        if first is not None and is_local(first[0]):
            ctx.count_not_read(f"{LOCAL_CODE} {concept_label(concept)}")
        else:
            ctx.count_not_read(f"Observations coded {concept_label(concept)}")
        return None
    label = LABELS[kind]
    status = res.get("status")
    if type(status) is not str or status not in USED_STATUSES:
        ctx.info(
            IssueCode.STATUS_IGNORED,
            f"{label} has status {quoted(status)}: only final, amended and corrected results "
            "are used; left out.",
            ref,
        )
        if kind in CML_EVIDENCE_KINDS and type(status) is str and status in _DONE_STATUSES:
            ctx.unread_result(ref, _plain_day(res))
        return None
    when = ctx.effective(res, ref, label)
    if when is None:
        if (
            kind in CML_EVIDENCE_KINDS
            and ctx.issues
            and ctx.issues[-1].code is IssueCode.MISSING_DATE
        ):
            ctx.unread_result(ref, None)
        return None
    text, day = when
    if kind in BCR_ABL1_KINDS:
        item: Any = map_bcr_abl1(res, ref, day, kind, ctx)
    else:
        item = _MAPPERS[kind](res, ref, day, kind, ctx)
    if item is None:
        if kind in CML_EVIDENCE_KINDS:
            ctx.unread_result(ref, day)
        return None
    return Candidate(kind, text, status, item, ref, res, order)


def _plain_day(res: dict[str, Any]) -> date | None:
    """The day an Observation names, without checks or issues (for a result set aside anyway)."""
    text = res.get("effectiveDateTime")
    if text is None:
        text = as_dict(res.get("effectivePeriod")).get("start")
    if type(text) is str and len(text) >= 10:
        try:
            return date.fromisoformat(text[:10])
        except ValueError:
            return None
    return None


def _quantity_in(
    res: dict[str, Any], ref: str, ctx: MappingContext, label: str, target: str
) -> float | None:
    """valueQuantity in ``target`` units, or None with an issue."""
    exact = _exact_quantity(res, ref, ctx, label)
    if exact is None:
        return None
    amount, unit = exact
    factor = units.factor(unit, target)
    if factor is None:
        ctx.warn(
            IssueCode.UNKNOWN_UNIT,
            f"{label} unit {quoted(unit)} cannot be converted to {target} (UCUM): left out.",
            ref,
        )
        return None
    return amount * factor


def _exact_quantity(
    res: dict[str, Any], ref: str, ctx: MappingContext, label: str
) -> tuple[float, str | None] | None:
    """(value, unit) of valueQuantity; None with an issue when it is missing or only a bound."""
    found, problem = observed_quantity(res)
    quantity = units.quantity(found)
    if quantity is None:
        shown = f" ({problem})" if problem else _absent(res)
        ctx.warn(
            IssueCode.MISSING_VALUE,
            f"{label} has no numeric valueQuantity{shown}: left out.",
            ref,
        )
        return None
    amount, unit, comparator = quantity
    if comparator is not None:
        shown = f"{amount:g} {unit}" if unit else f"{amount:g}"
        ctx.warn(
            IssueCode.AMBIGUOUS,
            f"{label} is reported as {comparator} {shown}, not an exact value: left out.",
            ref,
        )
        return None
    return amount, unit


def _in_range(
    value: float, low: float, high: float, unit: str, label: str, ref: str, ctx: MappingContext
) -> bool:
    if low <= value <= high:
        return True
    ctx.warn(
        IssueCode.OUT_OF_RANGE,
        f"{label} {value:g} {unit} is outside {low:g}-{high:g} {unit}: left out; check the value "
        "and its unit.",
        ref,
    )
    return False


def _absent(res: dict[str, Any]) -> str:
    absent = res.get("dataAbsentReason")
    if absent is None:
        return ""
    return f" (dataAbsentReason {concept_label(absent)})"


def _lab(
    res: dict[str, Any], ref: str, day: date, kind: Kind, ctx: MappingContext
) -> LabValue | None:
    target, low, high = LAB_UNITS[kind]
    label = LABELS[kind]
    value = _quantity_in(res, ref, ctx, label, target)
    if value is None or (
        not low <= value <= high and not _in_range(value, low, high, target, label, ref, ctx)
    ):
        return None
    return LabValue(ref, day, LAB_KINDS[kind], value)


def _cytogenetics(
    res: dict[str, Any], ref: str, day: date, kind: Kind, ctx: MappingContext
) -> CytogeneticResult | None:
    label = LABELS[kind]
    parts = components(res) if "component" in res else {}
    metaphases: int | None = None
    ratio = res.get("valueRatio")
    if ratio is not None:
        top = units.quantity(as_dict(ratio).get("numerator"))
        bottom = units.quantity(as_dict(ratio).get("denominator"))
        if top is None or bottom is None or bottom[0] <= 0:
            ctx.warn(
                IssueCode.MISSING_VALUE,
                f"{label} valueRatio lacks a numerator or a positive denominator: left out.",
                ref,
            )
            return None
        percent: float | None = top[0] / bottom[0] * 100.0
        metaphases = round(bottom[0])
    else:
        percent = _quantity_in(res, ref, ctx, label, "%")
    if percent is None or not _in_range(percent, 0.0, 100.0, "%", label, ref, ctx):
        return None
    counted = parts.get(Part.METAPHASES)
    if counted is not None:
        metaphases = count(counted, "Metaphases counted", ref, ctx)
    return CytogeneticResult(
        ref,
        day,
        percent,
        "banding" if kind is Kind.PH_METAPHASES else "fish",
        metaphases,
        _flag(parts.get(Part.CLONAL_PH_POSITIVE), "Clonal abnormality in Ph+ cells", ref, ctx),
        _flag(parts.get(Part.HIGH_RISK_ACA), "High-risk ACA", ref, ctx),
    )


def _flag(comp: dict[str, Any] | None, label: str, ref: str, ctx: MappingContext) -> bool | None:
    if comp is None:
        return None
    value = comp.get("valueBoolean")
    if type(value) is bool:
        return value
    ctx.warn(IssueCode.MISSING_VALUE, f"{label} component has no valueBoolean: not used.", ref)
    return None


def _hematologic(
    res: dict[str, Any], ref: str, day: date, kind: Kind, ctx: MappingContext
) -> HematologicResponse | None:
    value = res.get("valueBoolean")
    if type(value) is bool:
        return HematologicResponse(ref, day, value)
    ctx.warn(
        IssueCode.MISSING_VALUE,
        "Hematologic response has no valueBoolean (true: complete hematologic response): left out.",
        ref,
    )
    return None


def _trough(
    res: dict[str, Any], ref: str, day: date, kind: Kind, ctx: MappingContext
) -> TroughLevel | None:
    label = LABELS[kind]
    exact = _exact_quantity(res, ref, ctx, label)
    if exact is None:
        return None
    amount, unit = exact
    factor = units.imatinib_ng_ml(unit)
    if factor is None:
        ctx.warn(
            IssueCode.UNKNOWN_UNIT,
            f"{label} unit {quoted(unit)} is neither a mass concentration (ng/mL, ug/L, mg/L) nor "
            "a molar one (umol/L, nmol/L): left out.",
            ref,
        )
        return None
    ng_ml = amount * factor
    if not _in_range(ng_ml, 0.0, MAX_TROUGH_NG_ML, "ng/mL", label, ref, ctx):
        return None
    hours: float | None = None
    comp = components(res).get(Part.HOURS_SINCE_DOSE) if "component" in res else None
    if comp is not None:
        hours = _quantity_in(comp, ref, ctx, "Time since the last dose", "h")
        if hours is not None and not _in_range(
            hours, 0.0, MAX_HOURS_SINCE_DOSE, "h", "Time since the last dose", ref, ctx
        ):
            hours = None
    return TroughLevel(
        ref, day, round(ng_ml, 6), hours_since_dose=hours, trough_by_code=_names_a_trough(res)
    )


def _names_a_trough(res: dict[str, Any]) -> bool:
    """LOINC 57844-3 is an imatinib level with no timing; only 103609-4 ("--trough") says when it
    was drawn. A level coded 57844-3 alone is a trough only if the time since the dose is given."""
    codes = {
        coding.get("code")
        for coding in (res.get("code") or {}).get("coding") or ()
        if isinstance(coding, dict) and coding.get("system") == c.LOINC
    }
    return not ("57844-3" in codes and "103609-4" not in codes)


def _adherence(
    res: dict[str, Any], ref: str, day: date, kind: Kind, ctx: MappingContext
) -> AdherenceAssessment | None:
    value = res.get("valueCodeableConcept")
    for system, code in codings(value):
        if system == c.SNOMED:
            if code in _ADHERENT:
                return AdherenceAssessment(ref, day, True)
            if code in _NOT_ADHERENT:
                return AdherenceAssessment(ref, day, False)
    ctx.warn(
        IssueCode.UNKNOWN_CODE,
        f"Adherence value {concept_label(value)} is not a known SNOMED CT adherence finding "
        "(1156699004 adherent; 702565001, 715036001, 275928001, 129834002, 448176008 not): "
        "left out.",
        ref,
    )
    return None


def _transcript(
    res: dict[str, Any], ref: str, day: date, kind: Kind, ctx: MappingContext
) -> TranscriptFinding | None:
    found = transcript_of(res)
    if found is None:
        ctx.warn(
            IssueCode.UNKNOWN_CODE,
            f"Transcript type {concept_label(res.get('valueCodeableConcept'))} is not one of "
            "e13a2, e14a2, e13a2+e14a2, e1a2, atypical: left out.",
            ref,
        )
        return None
    return TranscriptFinding(ref, day, found)


def _mutation(res: dict[str, Any], ref: str, day: date, kind: Kind, ctx: MappingContext) -> Any:
    return map_mutation(res, ref, day, ctx)


_MAPPERS: Final[dict[Kind, Callable[[dict[str, Any], str, date, Kind, MappingContext], Any]]] = {
    Kind.TRANSCRIPT: _transcript,
    Kind.PH_METAPHASES: _cytogenetics,
    Kind.PH_CELLS: _cytogenetics,
    Kind.WBC: _lab,
    Kind.PLATELETS: _lab,
    Kind.BASOPHILS: _lab,
    Kind.BLASTS: _lab,
    Kind.SPLEEN: _lab,
    Kind.CHR: _hematologic,
    Kind.TROUGH: _trough,
    Kind.MUTATION: _mutation,
    Kind.ADHERENCE: _adherence,
}


def is_bcr_abl1(res: dict[str, Any]) -> bool:
    """Evidence of CML for grouping: a BCR::ABL1 (p210) result, whatever its value."""
    return kind_of(res.get("code")) in CML_EVIDENCE_KINDS
