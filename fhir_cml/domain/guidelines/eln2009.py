"""ELN 2009 response to imatinib 400 mg first line (Baccarani et al., J Clin Oncol 2009).

The cytogenetic era: haematological (CHR), cytogenetic (Ph+ metaphases) and, from 12 months,
molecular criteria; categories optimal, suboptimal, failure, and warnings. An older summary of
these criteria, written as "when to consider dose escalation", calls several failures "suboptimal"
(no CHR at 3 months; loss of CHR or CCyR; a new clonal abnormality in Ph+ cells): where it differs,
this table follows the paper and the reading says so.
"""

from __future__ import annotations

from fhir_cml.domain.citations import ELN2009
from fhir_cml.domain.guidelines.table import Band, Bound, Criterion, Event, Measure, Op, Source
from fhir_cml.domain.vocabulary import ElnStatus, Guideline, Milestone

OPTIMAL, SUBOPTIMAL, FAILURE = ElnStatus.OPTIMAL, ElnStatus.SUBOPTIMAL, ElnStatus.FAILURE
WARNING = ElnStatus.WARNING
BCR, PH, CHR = Measure.BCR_ABL1, Measure.PH_POSITIVE, Measure.CHR
SOURCE = Source(
    Guideline.ELN2009,
    "ELN 2009",
    ELN2009,
    "definition of response to imatinib 400 mg first line (table)",
)

# Where the older summary (criteria for dose escalation) reads a failure of this table as a
# suboptimal response; the reading names the difference when it applies.
SUMMARY_CALLS_SUBOPTIMAL = frozenset(
    {
        (Milestone.M3, CHR),
        (Milestone.ANY, Event.LOSS_OF_CHR),
        (Milestone.ANY, Event.LOSS_OF_CCYR),
        (Milestone.ANY, Event.CLONAL_ABNORMALITY_PH_POSITIVE),
    }
)

TABLE = SOURCE.table(
    # "Baseline - warnings: high risk, del9q+, ACAs in Ph+ cells."
    SOURCE.row(
        Milestone.BASELINE,
        None,
        criteria=(Criterion(Event.CLONAL_ABNORMALITY_PH_POSITIVE, WARNING),),
    ),
    # "3 months - optimal: CHR and at least minor CyR (Ph+ <= 65 %); suboptimal: no CyR
    # (Ph+ > 95 %); failure: less than CHR." Ph+ 66-95 % (minimal CyR) is in no column.
    SOURCE.row(
        Milestone.M3,
        3.0,
        (
            Band(OPTIMAL, PH, upto=Bound(Op.LE, 65)),
            Band(SUBOPTIMAL, PH, above=Bound(Op.GT, 95)),
            Band(FAILURE, CHR, upto=Bound(Op.LT, 1)),
        ),
    ),
    # "6 months - optimal: at least PCyR (Ph+ <= 35 %); suboptimal: less than PCyR (Ph+ > 35 %);
    # failure: no CyR (Ph+ > 95 %)." Less than CHR at 6 months is failure too.
    SOURCE.row(
        Milestone.M6,
        6.0,
        (
            Band(OPTIMAL, PH, upto=Bound(Op.LE, 35)),
            Band(SUBOPTIMAL, PH, above=Bound(Op.GT, 35), upto=Bound(Op.LE, 95)),
            Band(FAILURE, PH, above=Bound(Op.GT, 95)),
            Band(FAILURE, CHR, upto=Bound(Op.LT, 1)),
        ),
    ),
    # "12 months - optimal: CCyR; suboptimal: PCyR (Ph+ 1-35 %); failure: less than PCyR
    # (Ph+ > 35 %); warning: less than MMR." (MMR itself is no criterion here: optimal is CCyR.)
    SOURCE.row(
        Milestone.M12,
        12.0,
        (
            Band(OPTIMAL, PH, upto=Bound(Op.LE, 0)),
            Band(SUBOPTIMAL, PH, above=Bound(Op.GT, 0), upto=Bound(Op.LE, 35)),
            Band(FAILURE, PH, above=Bound(Op.GT, 35)),
            Band(WARNING, BCR, above=Bound(Op.GT, 0.1)),
        ),
    ),
    # "18 months - optimal: MMR; suboptimal: less than MMR; failure: less than CCyR."
    SOURCE.row(
        Milestone.M18,
        18.0,
        (
            Band(OPTIMAL, PH, upto=Bound(Op.LE, 0)),
            Band(FAILURE, PH, above=Bound(Op.GT, 0)),
            Band(OPTIMAL, BCR, upto=Bound(Op.LE, 0.1)),
            Band(SUBOPTIMAL, BCR, above=Bound(Op.GT, 0.1)),
        ),
    ),
    # "Any time - optimal: stable or improving MMR; suboptimal: loss of MMR, mutations (still
    # sensitive to imatinib); failure: loss of CHR, loss of CCyR, mutations (poorly sensitive to
    # imatinib), CE (clonal chromosome abnormalities in Ph+ cells)." After 18 months, less than
    # CCyR stays failure and less than MMR stays suboptimal.
    SOURCE.row(
        Milestone.ANY,
        None,
        (
            Band(OPTIMAL, PH, upto=Bound(Op.LE, 0)),
            Band(FAILURE, PH, above=Bound(Op.GT, 0)),
            Band(OPTIMAL, BCR, upto=Bound(Op.LE, 0.1)),
            Band(SUBOPTIMAL, BCR, above=Bound(Op.GT, 0.1)),
        ),
        (
            Criterion(Event.LOSS_OF_MMR, SUBOPTIMAL),
            Criterion(Event.MUTATION_SENSITIVE, SUBOPTIMAL),
            Criterion(Event.LOSS_OF_CHR, FAILURE),
            Criterion(Event.LOSS_OF_CCYR, FAILURE),
            Criterion(Event.MUTATION_POORLY_SENSITIVE, FAILURE),
            Criterion(Event.CLONAL_ABNORMALITY_PH_POSITIVE, FAILURE),
        ),
    ),
)
