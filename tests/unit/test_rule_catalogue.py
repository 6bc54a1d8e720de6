"""The rule catalogue is the one source for what each rule can suggest (and for profiles/)."""

from __future__ import annotations

import json
from dataclasses import fields
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from fhir_cml.domain import DEFAULT_CONFIG, RULES, RuleConfig, assess
from fhir_cml.domain.config import MEANING
from fhir_cml.domain.vocabulary import Guideline, Recommendation
from fhir_cml.fhir.inbound import MappingOptions, load_paths
from fhir_cml.reporting import patient_contract, to_contract, to_text
from fhir_cml.reporting.catalogue import rules_markdown

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NOW = datetime(2025, 7, 1, tzinfo=UTC)


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


def test_the_rules_document_is_written_from_the_tables() -> None:
    committed = (Path(__file__).resolve().parents[2] / "docs" / "rules.md").read_text("utf-8")
    assert committed == rules_markdown(), (
        "run: python -m fhir_cml.reporting.catalogue > docs/rules.md"
    )


def test_rule_settings_are_read_checked_and_named() -> None:
    config = RuleConfig.from_mapping({"trough_target_ng_ml": 1100, "confirm_window_days": [30, 90]})
    assert config.changed() == {"trough_target_ng_ml": 1100.0, "confirm_window_days": (30, 90)}
    assert config.fingerprint != DEFAULT_CONFIG.fingerprint
    assert "trough_target_ng_ml=1100.0" in config.fingerprint
    for wrong in (
        {"nonsense": 1},
        {"trough_target_ng_ml": "high"},
        {"tdm_min_days_on_therapy": 2.5},
        {"trough_target_ng_ml": -1},
        {"confirm_window_days": [90, 30]},
        {"adult_age_years": True},
    ):
        with pytest.raises(
            ValueError, match=next(iter(wrong)) if "nonsense" not in wrong else "unknown"
        ):
            RuleConfig.from_mapping(wrong)
    assert set(MEANING) == {f.name for f in fields(RuleConfig)}


def test_a_site_setting_changes_the_reading_and_says_so() -> None:
    loaded = load_paths([EXAMPLES / "04-failure-low-trough.json"], MappingOptions(now=NOW))
    record = loaded.records[0]
    default = assess(record, date(2025, 6, 30))
    assert default.tdm.status.value == "subtherapeutic"  # 612 ng/mL
    lower = RuleConfig.from_mapping({"trough_target_ng_ml": 600})
    site = assess(record, date(2025, 6, 30), Guideline.ELN2020, lower)
    assert site.tdm.status.value == "adequate"
    assert patient_contract(site)["rule_settings"] == {"trough_target_ng_ml": 600.0}
    assert patient_contract(default)["rule_settings"] == {}
