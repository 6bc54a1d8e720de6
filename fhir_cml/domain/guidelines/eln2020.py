"""ELN 2020 milestones (Hochhaus et al., Leukemia 2020), the default guideline.

The paper's milestones table, row by row, in BCR::ABL1 on the International Scale; time runs from
the start of first-line TKI. The paper's words for each row are quoted above it.
"""

from __future__ import annotations

from fhir_cml.domain.citations import ELN2020
from fhir_cml.domain.guidelines.table import (
    Band,
    Bound,
    Condition,
    Criterion,
    Event,
    Measure,
    Op,
    Source,
)
from fhir_cml.domain.vocabulary import ElnStatus, Guideline, Milestone
from fhir_cml.domain.vocabulary import Recommendation as R

OPTIMAL, WARNING, FAILURE = ElnStatus.OPTIMAL, ElnStatus.WARNING, ElnStatus.FAILURE
BCR = Measure.BCR_ABL1
SOURCE = Source(Guideline.ELN2020, "ELN 2020", ELN2020, "milestones table")

TABLE = SOURCE.table(
    # "Baseline - warning: high-risk ACA, high-risk ELTS score." Read at diagnosis only: once a
    # milestone has been read it no longer sets the reading.
    SOURCE.row(
        Milestone.BASELINE,
        None,
        criteria=(
            Criterion(Event.HIGH_RISK_ACA, WARNING),
            Criterion(Event.HIGH_RISK_ELTS, WARNING),
        ),
    ),
    # "3 months - optimal: <= 10 %; warning: > 10 %; failure: > 10 % if confirmed within
    # 1-3 months." Confirmed by a later result, never by an earlier one.
    SOURCE.row(
        Milestone.M3,
        3.0,
        (
            Band(OPTIMAL, BCR, upto=Bound(Op.LE, 10)),
            Band(WARNING, BCR, above=Bound(Op.GT, 10)),
            Band(FAILURE, BCR, above=Bound(Op.GT, 10), needs=Condition.CONFIRMED_LATER),
        ),
        leads_to=(R.REPEAT_PCR,),
    ),
    # "6 months - optimal: <= 1 %; warning: > 1-10 %; failure: > 10 %."
    SOURCE.row(
        Milestone.M6,
        6.0,
        (
            Band(OPTIMAL, BCR, upto=Bound(Op.LE, 1)),
            Band(WARNING, BCR, above=Bound(Op.GT, 1), upto=Bound(Op.LE, 10)),
            Band(FAILURE, BCR, above=Bound(Op.GT, 10)),
        ),
    ),
    # "12 months - optimal: <= 0.1 %; warning: > 0.1-1 %; failure: > 1 %."
    SOURCE.row(
        Milestone.M12,
        12.0,
        (
            Band(OPTIMAL, BCR, upto=Bound(Op.LE, 0.1)),
            Band(WARNING, BCR, above=Bound(Op.GT, 0.1), upto=Bound(Op.LE, 1)),
            Band(FAILURE, BCR, above=Bound(Op.GT, 1)),
        ),
    ),
    # "Any time - optimal: <= 0.1 %; warning: > 0.1-1 %, loss of <= 0.1 % (MMR); failure: > 1 %,
    # resistance mutations, high-risk ACA." A footnote reads loss of MMR (> 0.1 %) after TFR as
    # failure. The high-risk ACA here is one emerging in Ph+ cells on treatment.
    SOURCE.row(
        Milestone.ANY,
        None,
        (
            Band(OPTIMAL, BCR, upto=Bound(Op.LE, 0.1)),
            Band(WARNING, BCR, above=Bound(Op.GT, 0.1), upto=Bound(Op.LE, 1)),
            Band(FAILURE, BCR, above=Bound(Op.GT, 1)),
        ),
        (
            Criterion(Event.LOSS_OF_MMR, WARNING),
            Criterion(Event.RESISTANCE_MUTATION, FAILURE),
            Criterion(Event.HIGH_RISK_ACA, FAILURE),
            Criterion(Event.LOSS_OF_MMR_AFTER_STOP, FAILURE),
        ),
    ),
)
