"""``fhir-cml assess``: formats, messages on stderr and exit codes, over small FHIR files."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from fhir.resources.R4B.bundle import Bundle

from fhir_cml import cli
from fhir_cml.app import assessing
from fhir_cml.fhir import canonical as c
from fhir_cml.fhir import outbound
from fhir_cml.fhir.inbound import partition

DATA = Path(__file__).resolve().parents[1] / "data" / "cli"
GOOD = DATA / "good.json"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EXAMPLE_PATIENTS = len(list(EXAMPLES.glob("*.json")))  # one patient per file


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(cli.main, ["assess", *map(str, args)])


def contract(result: Result) -> dict[str, Any]:
    assert result.exit_code == 0, result.stderr
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def assert_one_patients_transaction(bundle: dict[str, Any]) -> None:
    """A valid transaction of the conditional creates written for one patient: the reading, the
    suggestions, the requests they propose, the Provenance."""
    Bundle.model_validate(bundle)
    assert bundle["type"] == "transaction"
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert kinds[:2] == ["RiskAssessment", "CarePlan"]
    assert kinds[-1] == "Provenance"
    for entry in bundle["entry"][2:-1]:  # the requests the CarePlan proposes
        assert entry["resource"]["intent"] == "proposal"
        assert entry["request"]["ifNoneExist"].startswith(f"identifier={c.ID_REQUEST}|")


def test_good_bundle_as_json_contract() -> None:
    result = run(GOOD, "--as-of", "2025-06-30", "--format", "json")
    doc = contract(result)
    assert doc["as_of"] == "2025-06-30"
    assert doc["guideline"] == "eln2020"
    (patient,) = doc["patients"]
    assert patient["patient"] == "Patient/cli-1"
    assert patient["therapy"]["drug"] == "imatinib"
    assert patient["therapy"]["daily_dose_mg"] == 400
    assert patient["therapy"]["start"] == "2023-01-10"
    assert patient["latest_bcr_abl1"]["date"] == "2025-04-08"
    assert patient["latest_bcr_abl1"]["is_percent"] == 0.02
    assert patient["latest_bcr_abl1"]["control_copies"] == 58000
    assert patient["molecular_response"] == "MMR"
    assert patient["eln"]["status"] == "optimal"
    for key in ("tfr", "tdm", "risk_scores", "next_pcr_due", "recommendations", "issues"):
        assert key in patient
    assert patient["recommendations"][0]["code"] == "continue-therapy"
    assert doc["summary"]["assessed"] == 1
    assert doc["summary"]["files"] == 1
    assert "as of 2025-06-30" in result.stderr


def test_text_is_the_default_and_states_as_of_and_guideline() -> None:
    result = run(GOOD, "--as-of", "2025-06-30", "--guideline", "eln2013")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("fhir-cml ")
    assert "ELN 2013 - as of 2025-06-30" in result.stdout.splitlines()[0]
    assert "== Patient/cli-1 ==" in result.stdout
    assert "basis:" in result.stdout


def test_as_of_defaults_to_today() -> None:
    doc = contract(run(GOOD, "--format", "json"))
    assert doc["as_of"] == date.today().isoformat()


def test_bundle_is_a_valid_transaction_of_conditional_creates() -> None:
    result = run(GOOD, "--as-of", "2025-06-30", "--format", "bundle")
    assert result.exit_code == 0, result.stderr
    bundle = json.loads(result.stdout)
    assert_one_patients_transaction(bundle)
    assert bundle["entry"][0]["request"]["ifNoneExist"].startswith(f"identifier={c.ID_ASSESSMENT}|")
    assert bundle["entry"][1]["resource"]["status"] == "draft"


def test_output_file(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    result = run(GOOD, "--as-of", "2025-06-30", "--format", "json", "--output", out)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert json.loads(out.read_text())["patients"][0]["patient"] == "Patient/cli-1"
    assert str(out) in result.stderr


def test_not_json_alone_reads_nothing() -> None:
    result = run(DATA / "not-json.json", "--as-of", "2025-06-30")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "not-json.json" in result.stderr
    assert "nothing to assess" in result.stderr


def test_an_unreadable_file_does_not_stop_the_readable_ones() -> None:
    result = run(DATA / "not-json.json", GOOD, "--as-of", "2025-06-30", "--format", "json")
    doc = contract(result)
    assert "not-json.json" in result.stderr
    assert [p["patient"] for p in doc["patients"]] == ["Patient/cli-1"]
    assert doc["summary"]["unreadable"] >= 1
    assert any("not-json.json" in (i["resource"] or "") + i["message"] for i in doc["issues"])


def test_garbage_entries_are_named_and_the_patient_still_assessed() -> None:
    result = run(DATA / "garbage-entry.json", "--as-of", "2025-06-30", "--format", "json")
    doc = contract(result)
    assert "garbage-entry.json" in result.stderr
    assert "entry" in result.stderr
    assert doc["patients"][0]["molecular_response"] == "MMR"


def test_a_resource_of_the_wrong_type_gives_no_patient() -> None:
    result = run(DATA / "wrong-type.json", "--as-of", "2025-06-30")
    assert result.exit_code == 1
    assert "nothing to assess" in result.stderr
    assert "no CML patient" in result.stderr


def test_empty_directory_and_missing_file(tmp_path: Path) -> None:
    empty = run(tmp_path, "--as-of", "2025-06-30")
    assert empty.exit_code == 1
    assert str(tmp_path) in empty.stderr
    missing = run(tmp_path / "absent.json", "--as-of", "2025-06-30")
    assert missing.exit_code == 1
    assert "absent.json" in missing.stderr


def test_a_file_over_the_size_limit_is_refused_by_name() -> None:
    result = run(GOOD, "--as-of", "2025-06-30", "--max-file-size", "0.001")
    assert result.exit_code == 1
    assert "good.json" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        (),
        (GOOD, "--guideline", "eln1999"),
        (GOOD, "--as-of", "2025-13-01"),
        (GOOD, "--format", "xml"),
        (GOOD, "--conversion-factor", "-1"),
    ],
)
def test_usage_errors_exit_2(args: tuple[str | Path, ...]) -> None:
    assert run(*args).exit_code == 2


def test_invalid_output_of_our_own_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: Any) -> dict[str, Any]:
        return {"resourceType": "Bundle", "type": "transaction", "entry": [{"resource": 1}]}

    monkeypatch.setattr(outbound, "transaction_bundle", broken)
    result = run(GOOD, "--as-of", "2025-06-30", "--format", "bundle")
    assert result.exit_code == 3
    assert result.stdout == ""
    assert "invalid FHIR" in result.stderr
    assert '"resourceType": "OperationOutcome"' in result.stderr


def test_a_failing_assessment_is_reported_and_the_others_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def explode(*_: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(assessing, "assess", explode)
    result = run(GOOD, "--as-of", "2025-06-30", "--format", "json")
    assert result.exit_code == 3
    assert "Patient/cli-1: assessment failed" in result.stderr
    assert json.loads(result.stdout)["patients"] == []


def test_ndjson_is_one_valid_transaction_per_patient_and_line() -> None:
    result = run(EXAMPLES, "--as-of", "2025-06-30", "--format", "ndjson")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == EXAMPLE_PATIENTS
    patients = set()
    for line in lines:
        bundle = json.loads(line)
        assert_one_patients_transaction(bundle)
        patients.add(bundle["entry"][0]["resource"]["subject"]["reference"])
    assert len(patients) == EXAMPLE_PATIENTS


@pytest.mark.parametrize("fmt", ["json", "text", "bundle"])
def test_large_input_in_partitions_and_workers_gives_the_same_result(
    monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    args = (EXAMPLES, "--as-of", "2025-06-30", "--format", fmt)
    whole = run(*args)
    monkeypatch.setattr(partition, "PARTITION_BYTES", 20_000)
    alone = run(*args, "--jobs", "1")
    forked = run(*args, "--jobs", "2")
    assert whole.exit_code == alone.exit_code == forked.exit_code == 0, forked.stderr
    # Worker processes change nothing, not even the order (only the moment each run began).
    assert _timeless(forked.stdout) == _timeless(alone.stdout)
    if fmt == "text":  # the same blocks; sources are numbered in the order they are cited

        def blocks(text: str) -> list[str]:
            patients = re.split(r"\n(?:Sources|Input issues)\n", text)[0].split("\n== ")[1:]
            unwrapped = (" ".join(b.split()) for b in patients)
            return sorted(re.sub(r"source \d+", "source", b) for b in unwrapped)

        assert blocks(alone.stdout) == blocks(whole.stdout)
        assert alone.stdout.splitlines()[:2] == whole.stdout.splitlines()[:2]
        return
    parts, one = json.loads(_timeless(alone.stdout)), json.loads(_timeless(whole.stdout))
    if fmt == "bundle":
        Bundle.model_validate(json.loads(alone.stdout))
        parts["entry"].sort(key=lambda e: e["fullUrl"])
        one["entry"].sort(key=lambda e: e["fullUrl"])
    else:
        parts["patients"].sort(key=lambda p: p["patient"])
    assert parts == one


def _timeless(output: str) -> str:
    """The output without the instants each run stamps (``recorded``, ``timestamp``, and in
    the narratives that say when a suggestion was written)."""
    return re.sub(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)", "(instant)", output
    )


def test_a_failed_run_leaves_the_output_file_as_it_was(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    out = tmp_path / "result.json"
    out.write_text("yesterday's result")

    def broken(*_: Any) -> dict[str, Any]:
        return {"resourceType": "Bundle", "type": "transaction", "entry": [{"resource": 1}]}

    monkeypatch.setattr(outbound, "transaction_bundle", broken)
    result = run(GOOD, "--as-of", "2025-06-30", "--format", "bundle", "--output", out)
    assert result.exit_code == 3
    assert out.read_text() == "yesterday's result"
    assert list(tmp_path.iterdir()) == [out]


def test_a_progress_bar_only_when_asked_or_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(partition, "PARTITION_BYTES", 20_000)
    quiet = run(EXAMPLES, "--as-of", "2025-06-30", "--format", "json")
    assert "patients/s" not in quiet.stderr
    assert "%|" not in quiet.stderr
    shown = run(EXAMPLES, "--as-of", "2025-06-30", "--format", "json", "--progress")
    assert shown.exit_code == 0, shown.stderr
    assert "partitioning" in shown.stderr
    assert "assessing" in shown.stderr
    assert f"{EXAMPLE_PATIENTS}/{EXAMPLE_PATIENTS}" in shown.stderr


def test_rules_config_sets_the_sites_values_and_a_bad_file_is_a_usage_error(
    tmp_path: Path,
) -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "04-failure-low-trough.json"
    good = tmp_path / "rules.json"
    good.write_text('{"trough_target_ng_ml": 600}')
    result = run(example, "--as-of", "2025-06-30", "--format", "json", "--rules-config", good)
    patient = contract(result)["patients"][0]
    assert patient["rule_settings"] == {"trough_target_ng_ml": 600.0}
    assert patient["tdm"]["status"] == "adequate"
    bad = tmp_path / "bad.json"
    bad.write_text('{"trough_target": 600}')
    refused = run(example, "--rules-config", bad)
    assert refused.exit_code == 2
    assert "unknown rule settings: trough_target" in refused.output


@pytest.mark.parametrize("fmt", ["json", "ndjson", "bundle"])
def test_workers_leave_nothing_in_the_work_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fmt: str
) -> None:
    """The partitions and the items laid out by the workers are removed, after a run that
    completes and after one that fails part-way."""
    monkeypatch.setattr(partition, "PARTITION_BYTES", 20_000)
    work = tmp_path / "work"
    work.mkdir()
    args = (EXAMPLES, "--as-of", "2025-06-30", "--format", fmt, "--work-dir", work)
    alone = run(*args, "--jobs", "1")
    forked = run(*args, "--jobs", "2")
    assert alone.exit_code == forked.exit_code == 0, forked.stderr
    assert _timeless(forked.stdout) == _timeless(alone.stdout)
    if fmt == "ndjson":
        assert len(forked.stdout.splitlines()) == EXAMPLE_PATIENTS
    assert list(work.iterdir()) == []

    def broken(*_: Any) -> dict[str, Any]:
        return {"resourceType": "Bundle", "type": "transaction", "entry": [{"resource": 1}]}

    monkeypatch.setattr(outbound, "transaction_bundle", broken)
    failed = run(*args, "--jobs", "2", "--format", "bundle")
    assert failed.exit_code == 3
    assert list(work.iterdir()) == []


def test_assess_builds_no_fhir_resource_unless_asked(tmp_path: Path) -> None:
    """`assess` in the JSON or text form starts without the modules that build, validate or send
    FHIR resources: on 1,000 patients the imports are 0.1 s of a 1.4 s run (bench/README)."""
    import subprocess
    import sys

    heavy = ("fhir_cml.fhir.outbound", "fhir.resources", "pydantic", "requests", "flask")
    code = (
        "import sys\n"
        "from fhir_cml.cli import main\n"
        "try:\n"
        f"    main(['assess', {str(EXAMPLES)!r}, '--format', 'json', '-o', "
        f"{str(tmp_path / 'out.json')!r}, '--as-of', '2025-06-30'])\n"
        "except SystemExit as stop:\n"
        "    assert stop.code == 0, stop.code\n"
        f"print([m for m in {heavy!r} if m in sys.modules])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    assert json.loads((tmp_path / "out.json").read_text())["patients"]
