"""The direction of imports is part of the design: the domain core stays pure."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(package_parent: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(package_parent)}
    return subprocess.run(
        [str(LINT), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=package_parent,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_import_contracts_hold() -> None:
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_contracts_catch_io_in_the_domain_core(tmp_path: Path) -> None:
    shutil.copytree(
        ROOT / "fhir_cml", tmp_path / "fhir_cml", ignore=shutil.ignore_patterns("__pycache__")
    )
    engine = tmp_path / "fhir_cml" / "domain" / "engine.py"
    engine.write_text("import requests  # noqa\n" + engine.read_text())
    result = _lint(tmp_path)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout
    assert "fhir_cml.domain.engine -> requests" in result.stdout
