"""The survival rate of mutants of fhir_cml/domain, after ``mutmut run`` (see scripts/mutation).

Run from the directory mutmut ran in. A *logic* mutant changes code: a comparison, an operator, a
number, a condition, an argument. A mutant that only changes the text of a string literal (a rule
title, a finding's code, a docstring) is counted apart: the renderers and the catalogue tests see
those, but their wording is not logic. Prints the rate per module and overall, and the surviving
logic mutants (their diffs with ``--show``).

mutmut runs each mutant's tests in a process forked from one that has already imported the code,
so code that runs only at import (the guideline tables and the rule catalogue are built when
their modules load) and results cached before the fork never see the mutant: such a mutant
"survives" whatever the tests check. With ``--confirm`` each logic mutant mutmut reports as
surviving is run once more in a fresh process (the same tests, stopping at the first failure);
one that fails there is counted as killed ("killed fresh"), the others survive.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tokenize
import tomllib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

from mutmut.mutation.diff_apply import get_diff_for_mutant

# 0: the tests passed; 5 and 33: no test runs the mutated function (untested code survives too)
SURVIVED, KILLED = {0, 5, 33}, {1, 3, 37}
TIMEOUT = {36, -24, 24, 152, 255}


def _tokens(line: str) -> list[tuple[int, str]]:
    try:
        found = list(tokenize.generate_tokens(io.StringIO(line.strip() + "\n").readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return [(-1, line.strip())]
    return [(t.type, t.string) for t in found if t.type not in (tokenize.NL, tokenize.NEWLINE)]


def string_only(diff: str) -> bool:
    """True when the mutant changes nothing but the text of string literals."""
    removed = [
        line[1:]
        for line in diff.splitlines()
        if line.startswith("-") and not line.startswith("---")
    ]
    added = [
        line[1:]
        for line in diff.splitlines()
        if line.startswith("+") and not line.startswith("+++")
    ]
    if len(removed) != len(added) or not removed:
        return False
    for old, new in zip(removed, added, strict=True):
        a, b = _tokens(old), _tokens(new)
        if len(a) != len(b):
            return False
        for (ta, sa), (tb, sb) in zip(a, b, strict=True):
            if ta != tb or (sa != sb and ta != tokenize.STRING):
                return False
    return True


def pytest_args() -> list[str]:
    """The arguments mutmut gave pytest (scripts/mutation writes them into pyproject.toml)."""
    config = tomllib.loads(Path("pyproject.toml").read_text())["tool"]["mutmut"]
    return [*config["pytest_add_cli_args"], *config["pytest_add_cli_args_test_selection"]]


def killed_fresh(name: str, args: list[str], timeout: float = 600) -> bool:
    """Whether the mutant fails the tests in a fresh process (run in mutmut's ``mutants/``)."""
    env = {**os.environ, "MUTANT_UNDER_TEST": name}
    try:
        done = subprocess.run(  # noqa: S603 - this interpreter, pytest, the configured tests
            [sys.executable, "-m", "pytest", *args],
            cwd="mutants",
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return True  # a mutant that hangs the tests is caught
    return done.returncode not in (0, 5)  # 5: no test collected - not a kill


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--show", action="store_true", help="print each surviving logic mutant")
    parser.add_argument("--goal", type=float, default=10.0, help="survival goal, percent")
    parser.add_argument(
        "--confirm", action="store_true", help="run each survivor again in a fresh process"
    )
    args = parser.parse_args(argv)
    per_module: dict[str, Counter[str]] = {}
    survivors: list[tuple[str, str, str]] = []  # module, mutant, diff
    for meta in sorted(Path("mutants").rglob("*.py.meta")):
        source = str(meta.relative_to("mutants"))[: -len(".meta")]
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        counts = per_module.setdefault(source, Counter())
        for name, code in codes.items():
            if code in KILLED:
                outcome = "killed"
            elif code in TIMEOUT:
                outcome = "killed"  # a mutant that hangs the tests is caught
            elif code in SURVIVED:
                outcome = "survived"
            else:
                outcome = "not run"
            diff = get_diff_for_mutant(name, path=source) if outcome == "survived" else ""
            kind = "string" if outcome == "survived" and string_only(diff) else "logic"
            if outcome == "killed":
                # whether a killed mutant was a string one does not change the logic rate's
                # numerator; classify it too, for the denominator
                kind = "string" if string_only(get_diff_for_mutant(name, path=source)) else "logic"
            counts[f"{kind} {outcome}"] += 1
            if outcome == "survived" and kind == "logic":
                survivors.append((source, name, diff))
    fresh: set[str] = set()
    if args.confirm and survivors:
        check = partial(killed_fresh, args=pytest_args())
        with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
            verdicts = pool.map(check, [name for _, name, _ in survivors])
            fresh = {name for (_, name, _), kill in zip(survivors, verdicts, strict=True) if kill}
        for source, name, _ in survivors:
            if name in fresh:
                per_module[source]["logic survived"] -= 1
                per_module[source]["logic killed"] += 1
                per_module[source]["killed fresh"] += 1
        survivors = [s for s in survivors if s[1] not in fresh]
    total: Counter[str] = Counter()
    print(f"{'module':<48}{'logic':>7}{'survived':>10}{'rate':>8}{'strings':>9}")
    for source, counts in per_module.items():
        total.update(counts)
        logic = counts["logic killed"] + counts["logic survived"]
        if not logic:
            continue
        rate = 100 * counts["logic survived"] / logic
        strings = counts["string killed"] + counts["string survived"]
        print(f"{source:<48}{logic:>7}{counts['logic survived']:>10}{rate:>7.1f}%{strings:>9}")
    logic = total["logic killed"] + total["logic survived"]
    rate = 100 * total["logic survived"] / logic if logic else 0.0
    strings = total["string killed"] + total["string survived"]
    print(
        f"\nlogic mutants: {logic}, survived: {total['logic survived']} ({rate:.1f} %); "
        f"string-only mutants: {strings} ({total['string survived']} survived); "
        f"not run: {total['logic not run'] + total['string not run']}"
    )
    if args.confirm:
        print(
            f"of the logic mutants killed, {total['killed fresh']} only in a fresh process "
            "(code run at import, or results cached before mutmut's fork)"
        )
    print(
        f"goal <= {args.goal:g} % of logic mutants surviving: {'met' if rate <= args.goal else 'NOT met'}"
    )
    if args.show:
        for _, name, diff in survivors:
            print(f"\n# {name}\n{diff}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
