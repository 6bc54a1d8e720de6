"""Small patient courses that between them take every branch of the rules: the golden readings
(test_golden.py) pin what each one concludes, word for word, with its evidence."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from fhir_cml.domain.model import (
    Diagnosis,
    HematologicResponse,
    Issue,
    PatientRecord,
    TkiStatement,
    UnreadResult,
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

from . import builders
from .builders import (
    START,
    adherence,
    adverse,
    chronic,
    cyto,
    inhibitor,
    lab,
    months,
    mutation,
    pcr,
    record,
    tki,
    trough,
)

E14 = Transcript.E14A2


def scenarios() -> dict[str, tuple[PatientRecord, date]]:
    """name -> (record, as-of date), built afresh with references numbered from 1, so the golden
    readings do not depend on which tests ran before."""
    builders.reset_references()
    OPTIMAL = [pcr(months(3), 5.0, transcript=E14), pcr(months(6), 0.5), pcr(months(12), 0.05)]
    DEEP = [*OPTIMAL, *(pcr(months(m), None) for m in range(15, 72, 3))]
    BASELINE = [
        lab(START, LabKind.SPLEEN, 4),
        lab(START, LabKind.PLATELETS, 380),
        lab(START, LabKind.BLASTS, 1),
        lab(START, LabKind.BASOPHILS, 3),
        lab(START, LabKind.WBC, 60),
    ]

    def _tfr_course(*after: object, restart: bool = True) -> PatientRecord:
        stop, again = months(60), months(66)
        course: tuple[TkiStatement, ...] = (
            tki(START, end=stop, status=MedicationStatus.STOPPED, reason=StopReason.TFR),
        )
        if restart:
            course = (*course, tki(again))
        return record(
            bcr_abl1=[*DEEP[:-4], pcr(months(61), None), pcr(months(64), 0.3), *after],
            tki=course,
            diagnoses=(chronic(),),
        )

    def _issue_record() -> PatientRecord:
        rec = record(bcr_abl1=[*OPTIMAL, pcr(months(40), 0.01)])
        return replace(
            rec,
            issues=(Issue(Severity.WARNING, IssueCode.MISSING_DATE, "a reader's issue", "Obs/x"),),
        )

    return {
        "no-result": (record(), months(2)),
        "no-tki-record": (record(tki=(), bcr_abl1=OPTIMAL), months(12)),
        "no-usable-start": (
            record(tki=(tki(status=MedicationStatus.NOT_TAKEN),), bcr_abl1=OPTIMAL),
            months(12),
        ),
        "statements": (
            record(
                tki=(
                    tki(
                        START, end=months(4), status=MedicationStatus.COMPLETED, asserted=months(4)
                    ),
                    tki(months(4), dose=600),
                    tki(months(30), status=MedicationStatus.INTENDED),
                    replace(tki(months(20)), start=None),
                    tki(months(50)),
                    tki(months(5), status=MedicationStatus.STOPPED, asserted=None),
                ),
                bcr_abl1=OPTIMAL,
            ),
            months(13),
        ),
        "atypical-and-not-on-is": (
            record(
                bcr_abl1=[
                    pcr(months(3), 5.0, transcript=Transcript.E1A2),
                    pcr(months(6), 0.5, on_is=False),
                ]
            ),
            months(6),
        ),
        "depth-copies": (
            record(
                bcr_abl1=[
                    pcr(months(12), 0.005, copies=None),
                    pcr(months(15), 0.005, copies=5_000),
                    pcr(months(18), 0.005, copies=30_000, gene=ControlGene.GUSB),
                    pcr(months(21), None, copies=None),
                    pcr(months(24), None, copies=5_000),
                    pcr(months(27), None, copies=250_000, gene=ControlGene.GUSB),
                    pcr(months(30), 0.002, copies=40_000),
                    pcr(months(33), 0.0009, copies=150_000),
                ]
            ),
            months(33),
        ),
        "optimal-with-scores": (
            record(bcr_abl1=DEEP[:8], labs=BASELINE, birth_date=date(1960, 5, 1)),
            months(36),
        ),
        "scores-missing": (
            record(bcr_abl1=OPTIMAL, labs=BASELINE[:2], birth_date=None),
            months(12),
        ),
        "three-month-confirmed": (
            record(bcr_abl1=[pcr(months(1.5), 40.0), pcr(months(3), 20.0), pcr(months(4.5), 15.0)]),
            months(4.6),
        ),
        "three-month-interim": (
            record(bcr_abl1=[pcr(months(2.2), 12.0), pcr(months(3), 20.0), pcr(months(4), 5.0)]),
            months(4),
        ),
        "warning-workup": (
            record(bcr_abl1=[pcr(months(3), 8.0), pcr(months(6), 4.0)]),
            months(6),
        ),
        "escalate-low-trough": (
            record(
                bcr_abl1=[pcr(months(3), 8.0), pcr(months(6), 4.0)],
                troughs=[trough(months(5.5), 650.0)],
                adherence=[adherence(months(5.5), True)],
                mutations=[mutation(months(5.8), None, detected=False)],
            ),
            months(6),
        ),
        "escalate-sensitive-mutation-at-failure": (
            record(
                bcr_abl1=[pcr(months(3), 8.0), pcr(months(6), 12.0)],
                mutations=[mutation(months(5.8), "M351T")],
                tki=(tki(dose=600),),
            ),
            months(6),
        ),
        "poor-adherence": (
            record(
                bcr_abl1=[pcr(months(3), 8.0), pcr(months(6), 4.0)],
                adherence=[adherence(months(5.5), False)],
            ),
            months(6),
        ),
        "highest-dose": (
            record(bcr_abl1=[pcr(months(3), 8.0), pcr(months(6), 4.0)], tki=(tki(dose=800),)),
            months(6),
        ),
        "t315i": (
            record(
                bcr_abl1=[pcr(months(3), 8.0), pcr(months(6), 0.9), pcr(months(12), 3.0)],
                mutations=[mutation(months(12), "T315I")],
                troughs=[trough(months(11), 600.0)],
            ),
            months(12),
        ),
        "resistant-mutation-on-nilotinib": (
            record(
                bcr_abl1=[pcr(months(3), 8.0), pcr(months(6), 0.9), pcr(months(12), 0.5)],
                mutations=[mutation(months(12), "Y253H")],
                tki=(
                    tki(
                        START,
                        end=months(2),
                        status=MedicationStatus.STOPPED,
                        reason=StopReason.RESISTANCE,
                    ),
                    tki(months(2), drug=Tki.NILOTINIB, dose=600, per_day=2),
                ),
            ),
            months(12),
        ),
        "failure-second-line": (
            record(
                bcr_abl1=[pcr(months(3), 8.0), pcr(months(6), 0.9), pcr(months(12), 3.0)],
                tki=(
                    tki(
                        START,
                        end=months(2),
                        status=MedicationStatus.STOPPED,
                        reason=StopReason.INTOLERANCE,
                    ),
                    tki(months(2), drug=Tki.DASATINIB, dose=100),
                ),
            ),
            months(12),
        ),
        "loss-of-mmr": (
            record(
                bcr_abl1=[
                    *OPTIMAL,
                    pcr(months(18), 0.05),
                    pcr(months(21), 0.4),
                    pcr(months(24), 1.5),
                ]
            ),
            months(24),
        ),
        "loss-unconfirmed": (
            record(bcr_abl1=[*OPTIMAL, pcr(months(18), 0.05), pcr(months(21), 0.4)]),
            months(21),
        ),
        "unreadable-latest": (
            record(bcr_abl1=[*OPTIMAL, pcr(months(15), None, copies=2_000)]),
            months(15),
        ),
        "overdue": (record(bcr_abl1=OPTIMAL), months(20)),
        "early-monitoring": (record(bcr_abl1=[pcr(months(1), 30.0)]), months(1.5)),
        "interactions": (
            record(
                bcr_abl1=DEEP[:6],
                other_medications=(
                    inhibitor(start=months(20)),
                    replace(inhibitor("rifampicin"), effect=Cyp3a4Effect.STRONG_INDUCER),
                ),
                troughs=[trough(months(23), 2400.0)],
            ),
            months(24),
        ),
        "tdm-timing": (
            record(
                bcr_abl1=OPTIMAL,
                troughs=[trough(months(11.9), 900.0, hours=3.0)],
                tki=(tki(START, end=months(11.7), dose=400), tki(months(11.7), dose=600)),
            ),
            months(12),
        ),
        "tdm-earlier-dose": (
            record(
                bcr_abl1=OPTIMAL,
                troughs=[trough(months(6), 1500.0)],
                tki=(tki(START, end=months(9), dose=400), tki(months(9), dose=600)),
            ),
            months(12),
        ),
        "tdm-level-without-timing": (
            record(
                bcr_abl1=OPTIMAL,
                troughs=[replace(trough(months(11), 800.0, hours=None), trough_by_code=False)],
            ),
            months(12),
        ),
        "tdm-off-imatinib": (
            record(
                bcr_abl1=OPTIMAL,
                troughs=[trough(months(11), 800.0)],
                tki=(tki(drug=Tki.DASATINIB, dose=100),),
            ),
            months(12),
        ),
        "reduction": (
            record(
                bcr_abl1=[*OPTIMAL, *(pcr(months(m), 0.05) for m in range(15, 40, 3))],
                adverse_events=[adverse(months(36), "fatigue")],
                troughs=[trough(months(37), 2500.0)],
            ),
            months(39),
        ),
        "after-reduction": (
            record(
                bcr_abl1=[*OPTIMAL, *(pcr(months(m), 0.05) for m in range(15, 40, 3))],
                tki=(tki(START, end=months(36)), tki(months(36), dose=300)),
            ),
            months(39),
        ),
        "tfr-eligible": (record(bcr_abl1=DEEP, diagnoses=(chronic(),)), months(70)),
        "tfr-to-confirm": (record(bcr_abl1=DEEP), months(70)),
        "tfr-not-eligible": (
            record(
                bcr_abl1=DEEP,
                diagnoses=(Diagnosis("Condition/ap", Phase.ACCELERATED, START),),
                adherence=[adherence(months(69), False)],
            ),
            months(70),
        ),
        "tfr-ponatinib": (
            record(bcr_abl1=DEEP, diagnoses=(chronic(),), tki=(tki(drug=Tki.PONATINIB, dose=45),)),
            months(70),
        ),
        "tfr-child": (
            record(
                bcr_abl1=DEEP, diagnoses=(chronic(),), birth_date=date(2015, 1, 1), labs=BASELINE
            ),
            months(70),
        ),
        "tfr-stopped-other": (
            record(
                bcr_abl1=OPTIMAL,
                tki=(
                    tki(
                        START,
                        end=months(10),
                        status=MedicationStatus.STOPPED,
                        reason=StopReason.OTHER,
                    ),
                ),
            ),
            months(12),
        ),
        "tfr-inferred-stop": (
            record(
                bcr_abl1=[*DEEP, pcr(months(72), None)],
                tki=(tki(START, end=months(71), status=MedicationStatus.STOPPED),),
                diagnoses=(chronic(),),
            ),
            months(73),
        ),
        "tfr-in-remission": (_tfr_course(restart=False), months(63)),
        "tfr-relapse": (_tfr_course(restart=False), months(65)),
        "tfr-stim1": (
            record(
                bcr_abl1=[*DEEP[:-4], pcr(months(61), 0.002), pcr(months(62), 0.05)],
                tki=(
                    tki(
                        START,
                        end=months(60),
                        status=MedicationStatus.STOPPED,
                        reason=StopReason.TFR,
                    ),
                ),
                diagnoses=(chronic(),),
            ),
            months(62.5),
        ),
        "tfr-restarted": (_tfr_course(pcr(months(67.5), 0.2)), months(68)),
        "tfr-restart-overdue": (
            _tfr_course(pcr(months(67.5), 0.2), pcr(months(73), 0.15)),
            months(73),
        ),
        "tfr-regained": (_tfr_course(pcr(months(67.5), 0.05)), months(68)),
        "cytogenetic": (
            record(
                cytogenetics=[
                    cyto(START, 100.0, clonal_abnormality_in_ph_positive=True),
                    cyto(months(3), 70.0),
                    cyto(months(6), 30.0),
                    cyto(months(12), 0.0),
                    cyto(months(18), 0.0),
                    cyto(months(24), 5.0, clonal_abnormality_in_ph_positive=True),
                ],
                labs=[
                    lab(months(3), LabKind.WBC, 8),
                    lab(months(3), LabKind.PLATELETS, 300),
                    lab(months(3), LabKind.BASOPHILS, 2),
                    lab(months(3), LabKind.SPLEEN, 0),
                    lab(months(24), LabKind.WBC, 14),
                    lab(months(24), LabKind.PLATELETS, 500),
                    lab(months(24), LabKind.BASOPHILS, 6),
                    lab(months(24), LabKind.BLASTS, 2),
                    lab(months(24), LabKind.SPLEEN, 3),
                ],
                bcr_abl1=[pcr(months(18), 0.5)],
            ),
            months(24),
        ),
        "coded-chr": (
            record(
                hematologic=(
                    HematologicResponse("Observation/chr-1", months(3), False),
                    HematologicResponse("Observation/chr-2", months(6), True),
                ),
                cytogenetics=[cyto(months(6), 20.0)],
            ),
            months(6),
        ),
        "aca-baseline-then-optimal": (
            record(
                cytogenetics=[
                    cyto(START, 100.0, high_risk_aca=True, clonal_abnormality_in_ph_positive=True)
                ],
                bcr_abl1=[pcr(months(1), 40.0)],
            ),
            months(1),
        ),
        "aca-emergent": (
            record(
                cytogenetics=[
                    cyto(
                        months(12), 5.0, high_risk_aca=True, clonal_abnormality_in_ph_positive=True
                    )
                ],
                bcr_abl1=OPTIMAL,
            ),
            months(12),
        ),
        "elts-sokal-disagree": (
            record(
                labs=[
                    lab(START, LabKind.SPLEEN, 0),
                    lab(START, LabKind.PLATELETS, 1500),
                    lab(START, LabKind.BLASTS, 1),
                ],
                birth_date=date(1950, 1, 1),
                bcr_abl1=[pcr(months(1), 40.0)],
            ),
            months(1),
        ),
        "reader-issue-and-later-results": (_issue_record(), months(20)),
        "unread-result": (
            record(
                bcr_abl1=OPTIMAL,
                unread_bcr_abl1=(UnreadResult("Observation/unread-1", months(14), "a text value"),),
            ),
            months(16),
        ),
        "unread-undated": (
            record(
                bcr_abl1=OPTIMAL,
                unread_bcr_abl1=(UnreadResult("Observation/unread-2", None, "no readable date"),),
            ),
            months(13),
        ),
    }


# Read under every guideline (the others under ELN 2020 only: their rules do not depend on it).
ALL_GUIDELINES = frozenset(
    {
        "atypical-and-not-on-is",
        "three-month-confirmed",
        "three-month-interim",
        "warning-workup",
        "t315i",
        "resistant-mutation-on-nilotinib",
        "loss-of-mmr",
        "cytogenetic",
        "coded-chr",
        "aca-baseline-then-optimal",
        "aca-emergent",
        "tfr-relapse",
        "tfr-restarted",
        "elts-sokal-disagree",
    }
)
