"""ELN 2013 response to first-line TKI (Baccarani et al., Blood 2013).

Molecular (BCR::ABL1 on the IS) and cytogenetic (Ph+ metaphases) bands side by side, read "and/or":
the worse of the two sets the reading. Time runs from the start of first-line TKI.
"""

from __future__ import annotations

from fhir_cml.domain.citations import ELN2013
from fhir_cml.domain.guidelines.table import Band, Bound, Criterion, Event, Measure, Op, Source
from fhir_cml.domain.vocabulary import ElnStatus, Guideline, Milestone

OPTIMAL, WARNING, FAILURE = ElnStatus.OPTIMAL, ElnStatus.WARNING, ElnStatus.FAILURE
BCR, PH, CHR = Measure.BCR_ABL1, Measure.PH_POSITIVE, Measure.CHR
SOURCE = Source(Guideline.ELN2013, "ELN 2013", ELN2013, "response to first-line TKI table")

TABLE = SOURCE.table(
    # "Baseline - warning: high risk, or CCA/Ph+, major route." (Only the clonal chromosome
    # abnormality in Ph+ cells is read here; the 2013 risk scores are Sokal, Euro and EUTOS.)
    SOURCE.row(
        Milestone.BASELINE,
        None,
        criteria=(Criterion(Event.CLONAL_ABNORMALITY_PH_POSITIVE, WARNING),),
    ),
    # "3 months - optimal: BCR-ABL1 <= 10 % and/or Ph+ <= 35 %; warning: BCR-ABL1 > 10 % and/or
    # Ph+ 36-95 %; failure: non-CHR and/or Ph+ > 95 %."
    SOURCE.row(
        Milestone.M3,
        3.0,
        (
            Band(OPTIMAL, BCR, upto=Bound(Op.LE, 10)),
            Band(WARNING, BCR, above=Bound(Op.GT, 10)),
            Band(OPTIMAL, PH, upto=Bound(Op.LE, 35)),
            Band(WARNING, PH, above=Bound(Op.GT, 35), upto=Bound(Op.LE, 95)),
            Band(FAILURE, PH, above=Bound(Op.GT, 95)),
            Band(FAILURE, CHR, upto=Bound(Op.LT, 1)),
        ),
    ),
    # "6 months - optimal: BCR-ABL1 < 1 % and/or Ph+ 0; warning: BCR-ABL1 1-10 % and/or Ph+ 1-35 %;
    # failure: BCR-ABL1 > 10 % and/or Ph+ > 35 %."
    SOURCE.row(
        Milestone.M6,
        6.0,
        (
            Band(OPTIMAL, BCR, upto=Bound(Op.LT, 1)),
            Band(WARNING, BCR, above=Bound(Op.GE, 1), upto=Bound(Op.LE, 10)),
            Band(FAILURE, BCR, above=Bound(Op.GT, 10)),
            Band(OPTIMAL, PH, upto=Bound(Op.LE, 0)),
            Band(WARNING, PH, above=Bound(Op.GT, 0), upto=Bound(Op.LE, 35)),
            Band(FAILURE, PH, above=Bound(Op.GT, 35)),
        ),
    ),
    # "12 months - optimal: BCR-ABL1 <= 0.1 %; warning: BCR-ABL1 > 0.1-1 %; failure: BCR-ABL1 > 1 %
    # and/or Ph+ > 0."
    SOURCE.row(
        Milestone.M12,
        12.0,
        (
            Band(OPTIMAL, BCR, upto=Bound(Op.LE, 0.1)),
            Band(WARNING, BCR, above=Bound(Op.GT, 0.1), upto=Bound(Op.LE, 1)),
            Band(FAILURE, BCR, above=Bound(Op.GT, 1)),
            Band(OPTIMAL, PH, upto=Bound(Op.LE, 0)),
            Band(FAILURE, PH, above=Bound(Op.GT, 0)),
        ),
    ),
    # "Then, and at any time - optimal: BCR-ABL1 <= 0.1 %; warning: CCA/Ph- (-7 or 7q-) or
    # BCR-ABL1 > 0.1 %; failure: loss of CHR, loss of CCyR, confirmed loss of MMR, mutations,
    # CCA/Ph+." The abstract: "> 10 % at 6 months and > 1 % from 12 months onward define failure",
    # so BCR-ABL1 > 1 % stays failure after 12 months. Confirmed loss of MMR: "in 2 consecutive
    # tests, of which one with a BCR-ABL1 transcripts ratio >= 1 %".
    SOURCE.row(
        Milestone.ANY,
        None,
        (
            Band(OPTIMAL, BCR, upto=Bound(Op.LE, 0.1)),
            Band(WARNING, BCR, above=Bound(Op.GT, 0.1), upto=Bound(Op.LE, 1)),
            Band(FAILURE, BCR, above=Bound(Op.GT, 1)),
            Band(OPTIMAL, PH, upto=Bound(Op.LE, 0)),
            Band(FAILURE, PH, above=Bound(Op.GT, 0)),
        ),
        (
            Criterion(Event.LOSS_OF_CHR, FAILURE),
            Criterion(Event.LOSS_OF_CCYR, FAILURE),
            Criterion(Event.CONFIRMED_LOSS_OF_MMR, FAILURE),
            Criterion(Event.RESISTANCE_MUTATION, FAILURE),
            Criterion(Event.CLONAL_ABNORMALITY_PH_POSITIVE, FAILURE),
        ),
    ),
)
