"""The guideline tables as the papers print them: a changed threshold, comparator or category
fails here (the boundary tests check that the engine reads the tables; this checks the tables).

Each line below was checked against the paper's milestone table: ELN 2020 (Hochhaus et al.,
Leukemia 2020, milestones table), ELN 2013 (Baccarani et al., Blood 2013, response to first-line
TKI), ELN 2009 (Baccarani et al., J Clin Oncol 2009, response to imatinib 400 mg first line).
"""

from __future__ import annotations

import pytest

from fhir_cml.domain.guidelines import TABLES, Condition, Measure, bands, table, targets
from fhir_cml.domain.rule import RULES
from fhir_cml.domain.vocabulary import ElnStatus, Guideline, Milestone

PRINTED = {
    "eln2020-baseline": ("ELN 2020 at baseline: warning high-risk ACA, high-risk ELTS score"),
    "eln2020-3m": (
        "ELN 2020 at 3 months: optimal BCR::ABL1 <= 10 %; warning BCR::ABL1 > 10 %; failure BCR::ABL1 > 10 % confirmed by a later result within 1-3 months"
    ),
    "eln2020-6m": (
        "ELN 2020 at 6 months: optimal BCR::ABL1 <= 1 %; warning BCR::ABL1 > 1-10 %; failure BCR::ABL1 > 10 %"
    ),
    "eln2020-12m": (
        "ELN 2020 at 12 months: optimal BCR::ABL1 <= 0.1 %; warning BCR::ABL1 > 0.1-1 %; failure BCR::ABL1 > 1 %"
    ),
    "eln2020-any": (
        "ELN 2020 at any time: optimal BCR::ABL1 <= 0.1 %; warning BCR::ABL1 > 0.1-1 %, loss of MMR; failure BCR::ABL1 > 1 %, resistance mutation, high-risk ACA, loss of MMR after stopping TKI"
    ),
    "eln2013-baseline": (
        "ELN 2013 at baseline: warning clonal chromosome abnormality in Ph+ cells"
    ),
    "eln2013-3m": (
        "ELN 2013 at 3 months: optimal BCR::ABL1 <= 10 %, Ph+ <= 35 %; warning BCR::ABL1 > 10 %, Ph+ > 35-95 %; failure Ph+ > 95 %, no CHR"
    ),
    "eln2013-6m": (
        "ELN 2013 at 6 months: optimal BCR::ABL1 < 1 %, Ph+ 0 %; warning BCR::ABL1 >= 1-10 %, Ph+ > 0-35 %; failure BCR::ABL1 > 10 %, Ph+ > 35 %"
    ),
    "eln2013-12m": (
        "ELN 2013 at 12 months: optimal BCR::ABL1 <= 0.1 %, Ph+ 0 %; warning BCR::ABL1 > 0.1-1 %; failure BCR::ABL1 > 1 %, Ph+ > 0 %"
    ),
    "eln2013-any": (
        "ELN 2013 at any time: optimal BCR::ABL1 <= 0.1 %, Ph+ 0 %; warning BCR::ABL1 > 0.1-1 %; failure BCR::ABL1 > 1 %, Ph+ > 0 %, loss of CHR, loss of CCyR, confirmed loss of MMR, resistance mutation, clonal chromosome abnormality in Ph+ cells"
    ),
    "eln2009-baseline": (
        "ELN 2009 at baseline: warning clonal chromosome abnormality in Ph+ cells"
    ),
    "eln2009-3m": (
        "ELN 2009 at 3 months: optimal Ph+ <= 65 %; suboptimal Ph+ > 95 %; failure no CHR"
    ),
    "eln2009-6m": (
        "ELN 2009 at 6 months: optimal Ph+ <= 35 %; suboptimal Ph+ > 35-95 %; failure Ph+ > 95 %, no CHR"
    ),
    "eln2009-12m": (
        "ELN 2009 at 12 months: optimal Ph+ 0 %; warning BCR::ABL1 > 0.1 %; suboptimal Ph+ > 0-35 %; failure Ph+ > 35 %"
    ),
    "eln2009-18m": (
        "ELN 2009 at 18 months: optimal Ph+ 0 %, BCR::ABL1 <= 0.1 %; suboptimal BCR::ABL1 > 0.1 %; failure Ph+ > 0 %"
    ),
    "eln2009-any": (
        "ELN 2009 at any time: optimal Ph+ 0 %, BCR::ABL1 <= 0.1 %; suboptimal BCR::ABL1 > 0.1 %, loss of MMR, mutation still sensitive to imatinib; failure Ph+ > 0 %, loss of CHR, loss of CCyR, mutation poorly sensitive to imatinib, clonal chromosome abnormality in Ph+ cells"
    ),
}


def test_each_row_reads_as_the_paper_prints_it() -> None:
    found = {row.rule.id: row.rule.title for tab in TABLES.values() for row in tab.rows}
    assert found == PRINTED


def test_each_row_is_a_rule_of_the_catalogue_citing_its_paper() -> None:
    for tab in TABLES.values():
        for row in tab.rows:
            assert RULES[row.rule.id] is row.rule
            assert row.rule.citations == (tab.citation,)
            assert row.rule.guideline == tab.guideline.value


# The ranges a guideline's column leaves without a category: ELN 2009 at 3 months (Ph+ 66-95 %,
# "minimal" cytogenetic response, is neither optimal nor suboptimal) and at 12 months (MMR is no
# criterion there: optimal is CCyR; less than MMR is a warning).
GAPS = {
    (Guideline.ELN2009, Milestone.M3, Measure.PH_POSITIVE): lambda x: 65 < x <= 95,
    (Guideline.ELN2009, Milestone.M12, Measure.BCR_ABL1): lambda x: x <= 0.1,
}


@pytest.mark.parametrize("guideline", list(Guideline))
def test_bands_of_a_measure_never_overlap_and_leave_only_the_printed_gaps(
    guideline: Guideline,
) -> None:
    """Between 0 and 100 % every value is in exactly one band (a band needing confirmation shares
    its range with the one without it), except in the gaps above."""
    points = [x / 1000 for x in range(0, 1000)] + [x / 10 for x in range(10, 1001)]
    for row in table(guideline).rows:
        for measure in (Measure.BCR_ABL1, Measure.PH_POSITIVE):
            found = [b for b in row.bands_for(measure) if b.needs is None]
            if not found:
                continue
            gap = GAPS.get((guideline, row.milestone, measure), lambda x: False)
            for x in points:
                hits = [b for b in found if b.contains(x)]
                assert len(hits) == (0 if gap(x) else 1), (row.rule.id, measure, x, hits)


def test_the_chart_targets_are_the_optimal_limits() -> None:
    assert targets(Guideline.ELN2020) == ((3.0, 10), (6.0, 1), (12.0, 0.1))
    assert targets(Guideline.ELN2013) == ((3.0, 10), (6.0, 1), (12.0, 0.1))
    assert targets(Guideline.ELN2009) == ((18.0, 0.1),)


def test_the_three_month_failure_of_eln2020_needs_a_later_confirmation() -> None:
    three = bands(Guideline.ELN2020, Milestone.M3)
    failure = [b for b in three if b.status is ElnStatus.FAILURE]
    assert [b.needs for b in failure] == [Condition.CONFIRMED_LATER]
