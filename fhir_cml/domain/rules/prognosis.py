"""Trial evidence that fits the patient's situation (clinical-rules.md section 8).

These are population figures from the trials the seeds quote, attached to the RiskAssessment as
context for the clinician; they are not individual predictions.
"""

from __future__ import annotations

from fhir_cml.domain.basis import Percent, basis
from fhir_cml.domain.findings import Finding
from fhir_cml.domain.results import Prediction, TfrReading, Therapy
from fhir_cml.domain.rules.catalogue import IRIS_PROGRESSION, TFR_OUTCOMES
from fhir_cml.domain.vocabulary import TfrStatus, Tki

PROGRESSION = "progression-ap-bc"
TFR_RELAPSE = "molecular-relapse-after-stop"


def predictions(
    therapy: Therapy,
    twelve_month_value: tuple[float, str] | None,
    tfr: TfrReading,
) -> tuple[Prediction, ...]:
    out: list[Prediction] = []
    if therapy.drug is Tki.IMATINIB and therapy.line == 1 and twelve_month_value is not None:
        value, ref = twelve_month_value
        # IRIS 5-year freedom from progression by the 12-month response, BCR::ABL1 <= 1 % taken
        # as CCyR: (group, upper bound of the group, probability of progression)
        if value <= 0.1:
            group, p = "ccyr-and-mmr", 0.0
        elif value <= 1.0:
            group, p = "ccyr-without-mmr", 0.02
        else:
            group, p = "no-ccyr", 0.13
        out.append(
            Prediction(
                PROGRESSION,
                Finding.IRIS_PROGRESSION,
                (("group", group), ("probability", Percent(p * 100)), ("years", 5.0)),
                p,
                5.0,
                basis(
                    IRIS_PROGRESSION,
                    Finding.IRIS_PROGRESSION_GROUP,
                    (ref,),
                    group=group,
                    free=Percent(100 - p * 100),
                ),
            )
        )
    if tfr.status in (TfrStatus.ELIGIBLE, TfrStatus.IN_TFR):
        out.append(
            Prediction(
                TFR_RELAPSE,
                Finding.STIM1_RELAPSE_RISK,
                (("probability", Percent(61)), ("free", Percent(39)), ("months", 36)),
                0.61,
                3.0,
                basis(TFR_OUTCOMES, Finding.STIM1_OUTCOMES),
            )
        )
    return tuple(out)
