"""The committed conformance resources are what the FSH builds to.

Runs the one rebuild command (profiles/build --out DIR) into a temporary directory, offline, and
compares every generated file byte for byte with what is committed: the FSH generated from Python,
SUSHI's JSON (with snapshots) and the copy shipped in fhir_cml/conformance. One SUSHI run for the
whole module.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROFILES = ROOT / "profiles"


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("profiles-build")
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "FHIR_HOME": str(out / "fhir-home"),
    }
    result = subprocess.run(
        [str(PROFILES / "build"), "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUSHI reported errors" not in result.stderr
    return out


def _same_files(built: Path, committed: Path, pattern: str) -> None:
    names = sorted(p.name for p in built.glob(pattern))
    assert names, f"nothing built in {built}"
    assert names == sorted(p.name for p in committed.glob(pattern)), (
        f"{committed} differs from the build: run profiles/build"
    )
    stale = [n for n in names if (built / n).read_bytes() != (committed / n).read_bytes()]
    assert not stale, f"stale in {committed}: {stale} (run profiles/build and commit)"


def test_generated_fsh_is_committed(rebuilt: Path) -> None:
    _same_files(
        rebuilt / "project" / "input" / "fsh" / "generated",
        PROFILES / "input" / "fsh" / "generated",
        "*.fsh",
    )


def test_committed_json_is_what_the_fsh_builds_to(rebuilt: Path) -> None:
    _same_files(
        rebuilt / "project" / "fsh-generated" / "resources",
        PROFILES / "fsh-generated" / "resources",
        "*.json",
    )


def test_shipped_conformance_resources_are_the_build_output(rebuilt: Path) -> None:
    _same_files(rebuilt / "conformance", ROOT / "fhir_cml" / "conformance", "*.json")


def test_every_structure_definition_has_a_snapshot(rebuilt: Path) -> None:
    built = sorted((rebuilt / "conformance").glob("StructureDefinition-*.json"))
    assert len(built) >= 17
    for path in built:
        assert '"snapshot"' in path.read_text(encoding="utf-8"), path.name


def test_readme_lists_every_artefact(rebuilt: Path) -> None:
    built = (rebuilt / "project" / "README.md").read_text(encoding="utf-8")
    assert built == (PROFILES / "README.md").read_text(encoding="utf-8"), (
        "the artefact table of profiles/README.md is stale: run profiles/build"
    )
    for path in (rebuilt / "conformance").glob("*.json"):
        assert f"| {json.loads(path.read_text(encoding='utf-8'))['url']} |" in built, path.name


def test_examples_and_package_are_the_build_output(rebuilt: Path) -> None:
    _same_files(rebuilt / "project" / "examples", PROFILES / "examples", "*.json")
    sys.path.insert(0, str(PROFILES / "tools"))
    try:
        from make_package import read
    finally:
        sys.path.remove(str(PROFILES / "tools"))
    assert read(rebuilt / "project" / "package.tgz") == read(PROFILES / "package.tgz"), (
        "profiles/package.tgz is stale: run profiles/build and commit"
    )
