"""Hand-built patient records covering the readings the outbound side must render.

Built directly as domain values (no FHIR reading involved) so the builders and renderers are
tested on their own.
"""

from __future__ import annotations

from datetime import date, timedelta

from fhir_cml.domain import Assessment, Guideline, PatientRecord, assess
from fhir_cml.domain.model import (
    AdherenceAssessment,
    BcrAbl1Result,
    Diagnosis,
    Issue,
    LabValue,
    MutationResult,
    OtherMedication,
    TkiStatement,
    TroughLevel,
)
from fhir_cml.domain.vocabulary import (
    ControlGene,
    Cyp3a4Effect,
    IssueCode,
    LabKind,
    MedicationStatus,
    Phase,
    Severity,
    StopReason,
    Tki,
    Transcript,
)

AS_OF = date(2025, 6, 30)


def _pcr(ref: str, day: date, percent: float | None, copies: int = 60_000) -> BcrAbl1Result:
    return BcrAbl1Result(
        ref=ref,
        date=day,
        detectable=percent is not None,
        is_percent=percent,
        on_is=True,
        control_gene=ControlGene.ABL1,
        control_copies=copies,
        transcript=Transcript.E14A2,
    )


def _baseline(pid: str, start: date) -> tuple[LabValue, ...]:
    day = start - timedelta(days=7)
    return (
        LabValue(f"Observation/{pid}-spleen", day, LabKind.SPLEEN, 3.0),
        LabValue(f"Observation/{pid}-plt", day, LabKind.PLATELETS, 420.0),
        LabValue(f"Observation/{pid}-blasts", day, LabKind.BLASTS, 1.0),
        LabValue(f"Observation/{pid}-baso", day, LabKind.BASOPHILS, 2.0),
    )


def optimal_record() -> PatientRecord:
    start = date(2023, 1, 10)
    values = [(3, 4.0), (6, 0.6), (12, 0.05), (18, 0.03), (24, 0.02), (27, 0.015)]
    return PatientRecord(
        patient="Patient/opt",
        birth_date=date(1970, 5, 1),
        diagnoses=(Diagnosis("Condition/opt-cml", Phase.CHRONIC, date(2022, 12, 20)),),
        bcr_abl1=tuple(
            _pcr(f"Observation/opt-pcr-{m}", start + timedelta(days=round(m * 30.44)), v)
            for m, v in values
        ),
        labs=_baseline("opt", start),
        tki=(
            TkiStatement(
                "MedicationStatement/opt-ima",
                Tki.IMATINIB,
                MedicationStatus.ACTIVE,
                start,
                daily_dose_mg=400.0,
                doses_per_day=1,
            ),
        ),
        troughs=(
            TroughLevel("Observation/opt-trough", date(2023, 6, 1), 1250.0, hours_since_dose=23),
        ),
    )


def t315i_record() -> PatientRecord:
    start = date(2023, 1, 2)
    values = [(3, 25.0), (6, 18.0), (12, 9.0), (15, 12.0)]
    return PatientRecord(
        patient="Patient/t315i",
        birth_date=date(1958, 2, 3),
        diagnoses=(Diagnosis("Condition/t315i-cml", Phase.CHRONIC, date(2022, 12, 1)),),
        bcr_abl1=tuple(
            _pcr(f"Observation/t315i-pcr-{m}", start + timedelta(days=round(m * 30.44)), v)
            for m, v in values
        ),
        labs=_baseline("t315i", start),
        mutations=(
            MutationResult(
                "Observation/t315i-mut", date(2024, 5, 2), True, "T315I", "NP_005148.2:p.Thr315Ile"
            ),
        ),
        adherence=(AdherenceAssessment("Observation/t315i-adh", date(2025, 5, 1), True),),
        tki=(
            TkiStatement(
                "MedicationStatement/t315i-ima",
                Tki.IMATINIB,
                MedicationStatus.ACTIVE,
                start,
                daily_dose_mg=400.0,
                doses_per_day=1,
            ),
        ),
        other_medications=(
            OtherMedication(
                "MedicationStatement/t315i-clari",
                "clarithromycin",
                MedicationStatus.ACTIVE,
                Cyp3a4Effect.STRONG_INHIBITOR,
                date(2025, 6, 20),
            ),
        ),
    )


def tfr_relapse_record() -> PatientRecord:
    start = date(2015, 3, 1)
    stop = date(2024, 9, 1)
    pcrs = [
        _pcr(f"Observation/tfr-pcr-{i}", start + timedelta(days=91 * i), None, 120_000)
        for i in range(8, 38)
    ]
    pcrs += [
        _pcr("Observation/tfr-pcr-off-1", date(2024, 10, 1), None, 110_000),
        _pcr("Observation/tfr-pcr-off-2", date(2024, 11, 1), 0.004, 90_000),
        _pcr("Observation/tfr-pcr-off-3", date(2024, 12, 2), 0.35, 80_000),
    ]
    return PatientRecord(
        patient="Patient/tfr",
        birth_date=date(1965, 8, 8),
        diagnoses=(Diagnosis("Condition/tfr-cml", Phase.CHRONIC, date(2015, 2, 1)),),
        bcr_abl1=tuple(pcrs),
        tki=(
            TkiStatement(
                "MedicationStatement/tfr-ima",
                Tki.IMATINIB,
                MedicationStatus.STOPPED,
                start,
                stop,
                daily_dose_mg=400.0,
                doses_per_day=1,
                stop_reason=StopReason.TFR,
            ),
        ),
    )


def empty_record() -> PatientRecord:
    """Nothing usable: every reading not evaluable, one reader issue carried through."""
    return PatientRecord(
        patient="Patient/empty",
        issues=(
            Issue(
                Severity.WARNING,
                IssueCode.MISSING_DATE,
                "Observation without an effective date: left out.",
                "Observation/empty-nodate",
            ),
        ),
    )


RECORDS = {
    "optimal": optimal_record,
    "t315i": t315i_record,
    "tfr-relapse": tfr_relapse_record,
    "not-evaluable": empty_record,
}


def assessment(
    name: str, as_of: date = AS_OF, guideline: Guideline = Guideline.ELN2020
) -> Assessment:
    return assess(RECORDS[name](), as_of, guideline)
