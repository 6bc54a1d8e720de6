"""Golden readings: what each scenario and each example concludes, every basis with its rule,
finding, sentence and evidence, under each guideline - so that no part of a conclusion changes
unseen (a threshold, a parameter, a piece of evidence, a suggestion's wording).

After an intended change, rewrite the file and review its diff:

    FHIR_CML_UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/domain/test_golden.py
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime
from pathlib import Path

from fhir_cml.domain import assess
from fhir_cml.domain.basis import Basis
from fhir_cml.domain.results import Assessment
from fhir_cml.domain.vocabulary import Guideline
from fhir_cml.fhir.inbound import MappingOptions, load_paths
from fhir_cml.reporting import issue_message, prediction_text, say, suggestion_text

from .scenarios import ALL_GUIDELINES, scenarios

GOLDEN = Path(__file__).with_name("golden.txt")
EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
AS_OF = date(2025, 6, 30)


def _basis(b: Basis | None, indent: str = "    ") -> list[str]:
    if b is None:
        return []
    return [f"{indent}[{b.rule.id} {b.finding.value}] {say(b)} <{' '.join(b.evidence)}>"]


def trace(a: Assessment) -> list[str]:
    """The whole reading as lines of text."""
    t = a.therapy
    out = [
        f"  therapy {t.status.value} {t.drug} {t.daily_dose_mg} line {t.line} start {t.start} "
        f"current {t.current_start} stopped {t.stopped_on} {t.stop_reason} restarted {t.restarted}",
        f"  depth {a.molecular_response.depth.value}",
        *_basis(a.molecular_response.basis),
        f"  eln {a.eln.status.value} {a.eln.milestone}",
    ]
    for b in a.eln.reasons:
        out += _basis(b)
    for h in a.eln.history:
        out.append(
            f"    history {h.date} {h.months} {h.milestone} {h.status.value} {h.kind} {h.role}"
        )
        out += _basis(h.basis, "      ")
    out.append(
        f"  loss {a.loss_of_mmr.lost} {a.loss_of_mmr.confirmed} {a.loss_of_mmr.confirmed_eln2013}"
    )
    out += _basis(a.loss_of_mmr.basis)
    tfr = a.tfr
    out.append(
        f"  tfr {tfr.status.value} optimal {tfr.optimal_criteria_met} stopped {tfr.stopped_on} "
        f"{tfr.months_since_stop} stim1 {tfr.stim1_relapse} relapse {tfr.relapse_on} restarted "
        f"{tfr.restarted_on} regained {tfr.mmr_regained_on} confirm "
        f"{[b.finding.value for b in tfr.to_confirm]}"
    )
    for b in tfr.reasons:
        out += _basis(b)
    out.append(f"  tdm {a.tdm.status.value} current {a.tdm.at_current_dose}")
    out += _basis(a.tdm.basis)
    for s in a.risk_scores:
        out.append(f"  score {s.name} {s.value} {s.category.value}")
        out += _basis(s.basis)
    for i in a.interactions:
        out.append(f"  interaction {i.medication} {i.effect} {i.ref}")
        out += _basis(i.basis)
    m = a.monitoring
    out.append(f"  monitoring {m.phase} {m.interval_days} due {m.next_pcr_due} overdue {m.overdue}")
    out += _basis(m.basis)
    for s in a.recommendations:
        out.append(f"  suggest {s.code.value} [{s.finding.value}] {suggestion_text(s)}")
        for b in s.basis:
            out += _basis(b)
    for p in a.predictions:
        out.append(f"  predict {p.outcome} {p.probability} {p.years} {prediction_text(p)}")
        out += _basis(p.basis)
    for i in a.issues:
        out.append(f"  issue {i.severity.value} {i.code.value} {i.resource} {issue_message(i)}")
        if i.basis is not None:
            out += _basis(i.basis)
    out.append(f"  inputs {' '.join(a.inputs)}")
    return out


def readings() -> str:
    lines: list[str] = []
    for name, (rec, as_of) in scenarios().items():
        for guideline in Guideline if name in ALL_GUIDELINES else (Guideline.ELN2020,):
            lines += [
                f"== {name} {guideline.value} as of {as_of}",
                *trace(assess(rec, as_of, guideline)),
            ]
    loaded = load_paths([EXAMPLES], MappingOptions(now=datetime(2025, 7, 1, tzinfo=UTC)))
    for rec in loaded.records:  # the other guidelines' readings: expected_readings.json
        lines += [f"== {rec.patient}", *trace(assess(rec, AS_OF))]
    return "\n".join(lines) + "\n"


def test_every_reading_is_the_golden_one() -> None:
    found = readings()
    if os.environ.get("FHIR_CML_UPDATE_GOLDEN"):
        GOLDEN.write_text(found, encoding="utf-8")
    expected = GOLDEN.read_text(encoding="utf-8")
    if found != expected:
        old, new = expected.splitlines(), found.splitlines()
        diff = [f"- {a}\n+ {b}" for a, b in zip(old, new, strict=False) if a != b]
        raise AssertionError(
            f"readings changed ({len(old)} lines expected, {len(new)} found):\n"
            + "\n".join(diff[:20])
        )
