"""The guidelines as tables: the one place a milestone threshold is written.

``table(Guideline.ELN2020).bands(Milestone.M12)`` gives the 12-month bands with their comparators;
the milestone rule reads the same tables, as do the SMART chart, the rule catalogue, the
PlanDefinitions and the boundary tests.
"""

from __future__ import annotations

from fhir_cml.domain.guidelines import eln2009, eln2013, eln2020
from fhir_cml.domain.guidelines.table import (
    Band,
    Bound,
    Condition,
    Criterion,
    Event,
    GuidelineTable,
    Measure,
    Op,
    Row,
)
from fhir_cml.domain.vocabulary import ElnStatus, Guideline, Milestone

TABLES: dict[Guideline, GuidelineTable] = {
    Guideline.ELN2020: eln2020.TABLE,
    Guideline.ELN2013: eln2013.TABLE,
    Guideline.ELN2009: eln2009.TABLE,
}


def table(guideline: Guideline) -> GuidelineTable:
    return TABLES[guideline]


def bands(
    guideline: Guideline, milestone: Milestone, measure: Measure = Measure.BCR_ABL1
) -> tuple[Band, ...]:
    """The bands of one measure at one milestone ("optimal <= 10 %", ...), best first."""
    return table(guideline).bands(milestone, measure)


def optimal_limit(band_list: tuple[Band, ...]) -> Band | None:
    """The optimal band of a milestone, e.g. for a chart's target line."""
    return next((b for b in band_list if b.status is ElnStatus.OPTIMAL), None)


def milestones(
    guideline: Guideline, measure: Measure = Measure.BCR_ABL1
) -> tuple[tuple[Milestone, float, tuple[Band, ...]], ...]:
    """Each timed milestone with its months and its bands of one measure (for a chart's zones),
    earliest first; milestones without a band of that measure are left out."""
    return tuple(
        (row.milestone, row.months, row.bands_for(measure))
        for row in table(guideline).timed
        if row.months is not None and row.bands_for(measure)
    )


def targets(guideline: Guideline) -> tuple[tuple[float, float], ...]:
    """(months, IS %) of each milestone's optimal molecular limit: "<= 10 % at 3 months"."""
    out: list[tuple[float, float]] = []
    for _, months, found in milestones(guideline):
        optimal = optimal_limit(found)
        if optimal is not None and optimal.upto is not None:
            out.append((months, optimal.upto.value))
    return tuple(out)


__all__ = [
    "TABLES",
    "Band",
    "Bound",
    "Condition",
    "Criterion",
    "Event",
    "GuidelineTable",
    "Measure",
    "Op",
    "Row",
    "bands",
    "milestones",
    "optimal_limit",
    "table",
    "targets",
]
