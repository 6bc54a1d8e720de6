"""The JSON contract (names are stable: this test lists them) and the clinician's text."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from fhir_cml import __version__
from fhir_cml.domain import RULESET_VERSION, Guideline
from fhir_cml.domain.findings import Finding
from fhir_cml.domain.model import Issue
from fhir_cml.domain.vocabulary import IssueCode, Recommendation, Severity
from fhir_cml.reporting import LoadSummary, to_contract, to_text
from fhir_cml.reporting.messages import MESSAGES
from tests.unit.cases import AS_OF, RECORDS, assessment

TOP = {"as_of", "guideline", "ruleset_version", "generator", "patients", "issues", "summary"}
SUMMARY = {"patients", "assessed", "skipped", "resources", "files", "unreadable"}
PATIENT = {
    "patient",
    "therapy",
    "latest_bcr_abl1",
    "molecular_response",
    "eln",
    "loss_of_mmr",
    "tfr",
    "tdm",
    "risk_scores",
    "next_pcr_due",
    "pcr_overdue",
    "monitoring",
    "interactions",
    "recommendations",
    "predictions",
    "issues",
    "inputs",
}
THERAPY = {
    "drug",
    "start",
    "daily_dose_mg",
    "months_on_therapy",
    "status",
    "line",
    "current_start",
    "segments",
}
LATEST = {"date", "is_percent", "detectable", "control_gene", "control_copies", "observation"}
ELN = {"status", "milestone", "reasons", "history"}
LOSS = {"lost", "confirmed"}
TFR = {"status", "reasons", "optimal_criteria_met"}
TDM = {"status", "trough_ng_ml", "date", "observation", "reasons"}
SCORE = {"value", "category", "reasons"}
MONITORING = {"interval_days", "phase", "reasons"}
INTERACTION = {"medication", "effect", "resource"}
RECOMMENDATION = {"code", "text", "basis"}
PREDICTION = {"outcome", "text", "probability", "years", "basis"}
ISSUE = {"severity", "code", "message", "resource"}
BASIS = {"text", "rule", "rule_title", "guideline", "source", "evidence"}


def contract() -> dict[str, Any]:
    return to_contract(
        [assessment(n) for n in sorted(RECORDS)],
        as_of=AS_OF,
        guideline=Guideline.ELN2020,
        load_summary=LoadSummary(files=3, resources=120, unreadable=1, skipped=2),
        issues=[Issue(Severity.ERROR, IssueCode.UNREADABLE, "not JSON", "bad.json")],
    )


def keys(obj: dict[str, Any], expected: set[str]) -> None:
    missing = expected - set(obj)
    assert not missing, f"renamed or dropped: {sorted(missing)}"


def test_contract_field_names() -> None:
    doc = contract()
    keys(doc, TOP)
    keys(doc["summary"], SUMMARY)
    keys(doc["issues"][0], ISSUE)
    assert len(doc["patients"]) == len(RECORDS)
    for p in doc["patients"]:
        keys(p, PATIENT)
        keys(p["therapy"], THERAPY)
        if p["latest_bcr_abl1"] is not None:
            keys(p["latest_bcr_abl1"], LATEST)
        keys(p["eln"], ELN)
        keys(p["loss_of_mmr"], LOSS)
        keys(p["tfr"], TFR)
        keys(p["tdm"], TDM)
        assert set(p["risk_scores"]) == {"sokal", "elts", "eutos"}
        for score in p["risk_scores"].values():
            keys(score, SCORE)
        keys(p["monitoring"], MONITORING)
        for item in p["interactions"]:
            keys(item, INTERACTION)
        for item in p["recommendations"]:
            keys(item, RECOMMENDATION)
            for b in item["basis"]:
                keys(b, BASIS)
        for item in p["predictions"]:
            keys(item, PREDICTION)
        for item in p["issues"]:
            keys(item, ISSUE)
        for reasons in (p["eln"]["reasons"], p["tfr"]["reasons"], p["monitoring"]["reasons"]):
            for b in reasons:
                keys(b, BASIS)
        for segment in p["therapy"]["segments"]:
            keys(segment, {"drug", "daily_dose_mg", "start", "end"})


def test_contract_values_are_the_documented_codes() -> None:
    doc = contract()
    assert doc["as_of"] == "2025-06-30"
    assert doc["guideline"] == "eln2020"
    assert doc["ruleset_version"] == RULESET_VERSION
    assert doc["generator"] == {"name": "fhir-cml", "version": __version__}
    assert doc["summary"] == {
        "patients": len(RECORDS) + 2,
        "assessed": len(RECORDS),
        "skipped": 2,
        "resources": 120,
        "files": 3,
        "unreadable": 1,
    }
    by_patient = {p["patient"]: p for p in doc["patients"]}
    for p in doc["patients"]:
        assert p["molecular_response"] in {"MR5", "MR4.5", "MR4", "MMR", "no-MMR", "not-evaluable"}
        assert p["eln"]["status"] in {"optimal", "warning", "failure", "not-evaluable"}
        assert p["eln"]["milestone"] in {"3m", "6m", "12m", "18m", "any", None}
        assert p["tfr"]["status"] in {
            "eligible",
            "not-eligible",
            "in-tfr",
            "molecular-relapse",
            "not-evaluable",
        }
        assert p["tdm"]["status"] in {
            "adequate",
            "subtherapeutic",
            "supratherapeutic",
            "timing-invalid",
            "none",
        }
        assert {r["code"] for r in p["recommendations"]} <= {r.value for r in Recommendation}
    opt = by_patient["Patient/opt"]
    assert opt["therapy"]["drug"] == "imatinib"
    assert opt["therapy"]["start"] == "2023-01-10"
    assert opt["therapy"]["daily_dose_mg"] == 400.0
    assert opt["therapy"]["months_on_therapy"] == 29.6
    assert opt["latest_bcr_abl1"]["is_percent"] == 0.015
    assert opt["latest_bcr_abl1"]["control_gene"] == "ABL1"
    assert opt["latest_bcr_abl1"]["observation"] == "Observation/opt-pcr-27"
    assert opt["tdm"]["trough_ng_ml"] == 1250.0
    assert opt["risk_scores"]["sokal"] == {
        "value": 0.826,
        "category": "intermediate",
        "reasons": opt["risk_scores"]["sokal"]["reasons"],
    }
    assert opt["next_pcr_due"] == "2025-07-11"
    assert opt["pcr_overdue"] is False
    basis = opt["recommendations"][0]["basis"][0]
    assert basis["rule"] == "eln2020-any"
    assert basis["guideline"] == "eln2020"
    assert "Hochhaus" in basis["source"]
    assert basis["evidence"] == ["Observation/opt-pcr-27"]
    empty = by_patient["Patient/empty"]
    assert empty["latest_bcr_abl1"] is None
    assert empty["eln"]["milestone"] is None
    assert empty["issues"][0] == {
        "severity": "warning",
        "code": "missing-date",
        "message": "Observation without an effective date: left out.",
        "resource": "Observation/empty-nodate",
    }
    # No TKI record at all is a data issue of its own (not silence).
    assert [(i["code"], i["resource"]) for i in empty["issues"][1:]] == [("no-therapy-start", None)]
    assert "No TKI record" in empty["issues"][1]["message"]


def test_contract_is_plain_json_with_iso_dates() -> None:
    text = json.dumps(contract(), allow_nan=False)
    dates = re.findall(r'"(?:as_of|start|date|next_pcr_due)": "([^"]+)"', text)
    assert dates
    assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", d) for d in dates)


@pytest.fixture(scope="module")
def text() -> str:
    return to_text(
        [assessment(n) for n in sorted(RECORDS)],
        as_of=AS_OF,
        guideline=Guideline.ELN2020,
        load_summary=LoadSummary(files=3, resources=120, unreadable=1, skipped=2),
        issues=[Issue(Severity.ERROR, IssueCode.UNREADABLE, "not JSON", "bad.json")],
    )


def test_text_names_as_of_and_guideline_and_counts(text: str) -> None:
    first, second = text.splitlines()[:2]
    assert (
        first == f"fhir-cml {__version__} (rules {RULESET_VERSION}) - ELN 2020 - as of 2025-06-30"
    )
    assert second.startswith(
        "4 patients assessed, 2 skipped (3 files, 120 resources, 1 unreadable)"
    )
    assert "not orders" in second


def test_text_gives_every_suggestion_with_its_basis_and_source(text: str) -> None:
    block = text.split("== Patient/t315i ==")[1].split("== ")[0]
    assert "Therapy       imatinib 400 mg/day, active" in block
    assert "Latest PCR    12 % IS on 2024-04-03, ABL1 60,000 copies" in block
    assert "ELN 2020      failure (any time)" in block
    assert "  1. T315I detected" in block
    assert "     basis: T315I detected on 2024-05-02. [t315i-no-escalation; source" in block
    assert "Risk scores   Sokal 0.949 intermediate; ELTS 1.5783 intermediate; EUTOS 26 low" in block
    assert "OVERDUE since 2024-07-03" in block
    number = re.search(r"\[t315i-no-escalation; source (\d+)\]", block)
    assert number
    sources = text.split("\nSources\n")[1]
    cited = sources.split(f"\n  {number.group(1)}. ")[1]
    assert cited.startswith("Soverini S, Abruzzese E, Bocchia M, et al. Next-generation sequencing")
    assert "doi:10.1186/s13045-019-0815-5" in " ".join(cited.split())


def test_text_lists_data_issues_and_input_issues(text: str) -> None:
    block = text.split("== Patient/empty ==")[1]
    assert "Data issues" in block
    assert (
        "warning (missing-date) Observation/empty-nodate: Observation without an effective date"
        in block
    )
    assert "Suggestions\n  none" in block
    assert "Input issues\n  - error (unreadable) bad.json: not JSON" in text


def test_text_lines_stay_readable(text: str) -> None:
    assert max(len(line) for line in text.splitlines()[2:]) <= 100


def test_every_finding_has_a_sentence() -> None:
    assert set(MESSAGES) == set(Finding)


def test_a_basis_is_said_as_its_sentence_however_many_come_and_go() -> None:
    """say() keeps the sentences of the bases said lately by the basis's id: a basis freed and a
    new one made in its place (CPython reuses the id at once) must get its own sentence, and so
    must a basis said again after the memo filled up and started over."""
    from fhir_cml.domain.basis import basis
    from fhir_cml.domain.rules.catalogue import INPUTS
    from fhir_cml.reporting.words import SAID_MOST, say

    kept = []
    for n in range(SAID_MOST + 50):
        b = basis(INPUTS, Finding.AFTER_AS_OF, as_of=f"day {n}")
        assert say(b) == f"Dated after the as-of date day {n}: not considered."
        assert say(b) == f"Dated after the as-of date day {n}: not considered."
        if n % 64 == 0:
            kept.append((b, n))
        del b
    assert len(say) <= SAID_MOST  # bounded: a server says bases all day
    for b, n in kept:
        assert say(b) == f"Dated after the as-of date day {n}: not considered."
