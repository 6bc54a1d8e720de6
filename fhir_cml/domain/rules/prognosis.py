"""Trial evidence that fits the patient's situation (clinical-rules.md section 8).

These are population figures from the trials the seeds quote, attached to the RiskAssessment as
context for the clinician; they are not individual predictions.
"""

from __future__ import annotations

from fhir_cml.domain.results import Basis, Prediction, TfrReading, Therapy
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
        if value <= 0.1:
            p, group = 0.0, "CCyR and MMR at 12 months: 100 % free from progression"
        elif value <= 1.0:
            p, group = 0.02, "CCyR without MMR at 12 months (BCR::ABL1 <= 1 % taken as CCyR): 98 %"
        else:
            p, group = 0.13, "no CCyR at 12 months (BCR::ABL1 > 1 %): 87 %"
        out.append(
            Prediction(
                PROGRESSION,
                f"Progression to accelerated or blast phase within 5 years: about {p:.0%} in IRIS for "
                f"patients with {group.rsplit(': ', 1)[0]}.",
                p,
                5.0,
                Basis(IRIS_PROGRESSION, f"IRIS 5-year freedom from progression, {group}.", (ref,)),
            )
        )
    if tfr.status in (TfrStatus.ELIGIBLE, TfrStatus.IN_TFR):
        out.append(
            Prediction(
                TFR_RELAPSE,
                "Molecular relapse within 3 years of stopping imatinib: about 61 % in STIM1 (39 % "
                "relapse-free at 36 months, 95 % CI 29-48); most relapses occur within 6 months.",
                0.61,
                3.0,
                Basis(
                    TFR_OUTCOMES,
                    "STIM1 39 % relapse-free at 36 months; STIM2 61 % at a median of 12 months; "
                    "TWISTER 47.1 % at 24 months; Sokal risk and imatinib duration predicted relapse "
                    "in STIM1.",
                    (),
                ),
            )
        )
    return tuple(out)
