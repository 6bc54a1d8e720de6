"""Small builders for domain records, so each test states only what it is about."""

from __future__ import annotations

from datetime import date, timedelta

from fhir_cml.domain.model import (
    AdherenceAssessment,
    AdverseEvent,
    BcrAbl1Result,
    CytogeneticResult,
    Diagnosis,
    LabValue,
    MutationResult,
    OtherMedication,
    PatientRecord,
    TkiStatement,
    TroughLevel,
)
from fhir_cml.domain.vocabulary import (
    ControlGene,
    Cyp3a4Effect,
    LabKind,
    MedicationStatus,
    Phase,
    StopReason,
    Tki,
    Transcript,
)

START = date(2020, 1, 1)
_counter = iter(range(1, 1_000_000))


def reset_references() -> None:
    """Number the next references from 1 again (for readings compared word for word)."""
    global _counter
    _counter = iter(range(1, 1_000_000))


def months(n: float, start: date = START) -> date:
    return start + timedelta(days=round(n * 30.4375))


def pcr(
    on: date,
    value: float | None,
    *,
    copies: int | None = 50_000,
    gene: ControlGene | None = ControlGene.ABL1,
    on_is: bool = True,
    transcript: Transcript | None = None,
) -> BcrAbl1Result:
    detectable = value is not None
    return BcrAbl1Result(
        ref=f"Observation/pcr-{next(_counter)}",
        date=on,
        detectable=detectable,
        is_percent=value if on_is else None,
        on_is=on_is,
        raw_percent=None if on_is else value,
        control_gene=gene,
        control_copies=copies,
        transcript=transcript,
        derived_from="percent" if detectable else "undetectable",
    )


def tki(
    start: date = START,
    *,
    drug: Tki = Tki.IMATINIB,
    dose: float | None = 400,
    per_day: int | None = 1,
    end: date | None = None,
    status: MedicationStatus = MedicationStatus.ACTIVE,
    reason: StopReason | None = None,
    asserted: date | None = None,
) -> TkiStatement:
    return TkiStatement(
        ref=f"MedicationStatement/tki-{next(_counter)}",
        drug=drug,
        status=status,
        start=start,
        end=end,
        daily_dose_mg=dose,
        doses_per_day=per_day,
        stop_reason=reason,
        asserted=asserted,
    )


def trough(on: date, ng_ml: float, hours: float | None = 24.0) -> TroughLevel:
    return TroughLevel(f"Observation/trough-{next(_counter)}", on, ng_ml, Tki.IMATINIB, hours)


def mutation(on: date, name: str | None, detected: bool = True) -> MutationResult:
    return MutationResult(f"Observation/mut-{next(_counter)}", on, detected, name)


def adherence(on: date, adherent: bool) -> AdherenceAssessment:
    return AdherenceAssessment(f"Observation/adh-{next(_counter)}", on, adherent)


def adverse(on: date, text: str = "muscle cramps", qol: bool = True) -> AdverseEvent:
    return AdverseEvent(f"AdverseEvent/ae-{next(_counter)}", on, text, qol)


def lab(on: date, kind: LabKind, value: float) -> LabValue:
    return LabValue(f"Observation/lab-{next(_counter)}", on, kind, value)


def cyto(on: date, ph: float, **kw: object) -> CytogeneticResult:
    return CytogeneticResult(f"Observation/cyto-{next(_counter)}", on, ph, **kw)  # type: ignore[arg-type]


def inhibitor(name: str = "clarithromycin", start: date = START) -> OtherMedication:
    return OtherMedication(
        f"MedicationStatement/other-{next(_counter)}",
        name,
        MedicationStatus.ACTIVE,
        Cyp3a4Effect.STRONG_INHIBITOR,
        start,
    )


def chronic() -> Diagnosis:
    return Diagnosis("Condition/cml", Phase.CHRONIC, START)


def record(**kw: object) -> PatientRecord:
    kw.setdefault("tki", (tki(),))
    for key, value in list(kw.items()):
        if isinstance(value, list):
            kw[key] = tuple(
                sorted(value, key=lambda v: getattr(v, "date", getattr(v, "start", None)))
            )
    return PatientRecord("Patient/p", **kw)  # type: ignore[arg-type]
