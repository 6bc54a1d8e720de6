"""The rule catalogue is the one source for what each rule can suggest (and for profiles/)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from fhir_cml.domain import RULES, assess
from fhir_cml.domain.vocabulary import Guideline, Recommendation
from fhir_cml.fhir.inbound import MappingOptions, load_paths

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("guideline", list(Guideline))
def test_every_suggestion_rests_on_a_rule_that_can_give_it(guideline: Guideline) -> None:
    loaded = load_paths([EXAMPLES], MappingOptions(now=datetime(2025, 7, 1, tzinfo=UTC)))
    seen: set[Recommendation] = set()
    for record in loaded.records:
        for suggestion in assess(record, date(2025, 6, 30), guideline).recommendations:
            offered = {code for basis in suggestion.basis for code in basis.rule.leads_to}
            assert suggestion.code in offered, (
                record.patient,
                suggestion.code,
                [b.rule.id for b in suggestion.basis],
            )
            seen.add(suggestion.code)
    assert len(seen) >= 10  # the examples exercise most suggestions


def test_every_recommendation_code_has_a_rule() -> None:
    offered = {code for rule in RULES.values() for code in rule.leads_to}
    assert offered == set(Recommendation)
