"""Trial evidence that fits the patient's situation.

Population figures from the trials (IRIS: Druker et al., N Engl J Med 2006; STIM1: Mahon et al.,
Lancet Oncol 2010), attached to the RiskAssessment as context for the clinician, only when the
patient belongs to the trial's population; they are not individual predictions.
"""

from __future__ import annotations

from fhir_cml.domain.basis import Percent, basis
from fhir_cml.domain.findings import Finding
from fhir_cml.domain.results import Prediction, TfrReading, Therapy
from fhir_cml.domain.rules.catalogue import IRIS_PROGRESSION, TFR_OUTCOMES
from fhir_cml.domain.vocabulary import TfrStatus, TherapyStatus, Tki

PROGRESSION = "progression-ap-bc"
TFR_RELAPSE = "molecular-relapse-after-stop"


def predictions(
    therapy: Therapy,
    twelve_month_value: tuple[float, str] | None,
    tfr: TfrReading,
    *,
    child: bool = False,
    resistant: bool = False,
    advanced: bool = False,
    failing: bool = False,
) -> tuple[Prediction, ...]:
    """The trial figures whose population the patient belongs to: IRIS only on continuous
    first-line imatinib in chronic phase without a resistance mutation and without a failure since
    (not after a relapse off treatment: the figures are by the 12-month response of patients who
    stayed on imatinib); STIM1 only for imatinib, with its own relapse definition; neither for
    children (adult trials)."""
    out: list[Prediction] = []
    iris_population = (
        therapy.drug is Tki.IMATINIB
        and therapy.line == 1
        and therapy.status in (TherapyStatus.ACTIVE, TherapyStatus.INTERRUPTED)
        and not therapy.tfr_stops
        and not (child or resistant or advanced or failing)
    )
    if iris_population and twelve_month_value is not None:
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
    if (
        tfr.status in (TfrStatus.ELIGIBLE, TfrStatus.IN_TFR)
        and therapy.drug is Tki.IMATINIB
        and not child
    ):
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
