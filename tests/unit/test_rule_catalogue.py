"""The rule catalogue is the one source for what each rule can suggest (and for profiles/)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from fhir_cml.domain import RULES, assess
from fhir_cml.domain.vocabulary import Guideline, Recommendation
from fhir_cml.fhir.inbound import MappingOptions, load_paths
from fhir_cml.reporting import to_contract, to_text

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


# Rules that are the project's own conventions (no published source); each says so in its title.
CONVENTIONS = {"inputs"}


def test_every_rule_cites_primary_literature_or_says_it_is_a_convention() -> None:
    for rule in RULES.values():
        if rule.id in CONVENTIONS:
            assert not rule.citations
            assert "project convention" in rule.title
            continue
        assert rule.citations, rule.id
        for cited in rule.citations:
            assert cited.authors, cited.key
            assert cited.title, cited.key
            # an identifier is given only where confirmed; otherwise the citation says so
            if not (cited.doi and cited.pmid):
                assert "not confirmed" in (cited.unconfirmed or ""), cited.key
            assert "seed" not in f"{cited.title} {cited.journal}".lower()
        assert "seed" not in rule.title.lower()


@pytest.mark.parametrize("guideline", list(Guideline))
def test_no_output_cites_a_summary_document(guideline: Guideline) -> None:
    loaded = load_paths([EXAMPLES], MappingOptions(now=datetime(2025, 7, 1, tzinfo=UTC)))
    assessments = [assess(r, date(2025, 6, 30), guideline) for r in loaded.records]
    text = to_text(assessments, as_of=date(2025, 6, 30), guideline=guideline)
    contract = json.dumps(to_contract(assessments, as_of=date(2025, 6, 30), guideline=guideline))
    for rendered in (text.lower(), contract.lower()):
        assert "seed" not in rendered
        assert "clinical-rules" not in rendered
    assert "doi:10.1038/s41375-020-0776-2" in " ".join(text.split())
