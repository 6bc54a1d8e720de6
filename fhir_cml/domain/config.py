"""Values the rules read that a clinic may set: its laboratory's conditions for a trough, its
monitoring intervals, where it stands within a range the sources give.

The milestone thresholds are not here: they are the guidelines' own (fhir_cml/domain/guidelines).
Where the sources give a range ("1-2 years", "every 4-6 weeks") the default is named in the output
together with the range, so a reader sees the choice. A clinic sets values with a JSON object of
the fields it changes (``fhir-cml assess --rules-config``, ``FHIR_CML_RULES_CONFIG``); the
assessment carries the values it used and ``fingerprint`` names them, so suggestions made under
other values are never taken for the same ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace


@dataclass(frozen=True, slots=True)
class RuleConfig:
    # Milestones: a result counts for a milestone from this many months before it.
    milestone_tolerance_months: float = 1.0
    # ELN 2020 3-month failure: a second result > 10 % within 1-3 months confirms it.
    confirm_window_days: tuple[int, int] = (28, 92)
    # Dose reduction: months of stable MMR required (sources: 1-2 years).
    stable_mmr_months_for_reduction: float = 12.0
    # TDM steady state (reference laboratory): days of therapy and days since the last dose change.
    tdm_min_days_on_therapy: int = 29
    tdm_min_days_since_dose_change: int = 8
    # A trough is drawn immediately before the next dose: accepted this many hours either side
    # of the dosing interval (24 h once daily, 12 h twice daily). Project convention.
    trough_timing_tolerance_hours: float = 4.0
    trough_target_ng_ml: float = 1000.0
    trough_supratherapeutic_ng_ml: float = 2000.0
    # Monitoring: every 3 months on TKI (ELN 2020); monthly during the first 3 months (project
    # default).
    early_monitoring_months: float = 3.0
    early_interval_days: int = 30
    standard_interval_days: int = 91
    # After a dose reduction: every 4-6 weeks for 6-12 months.
    after_reduction_interval_days: int = 42
    after_reduction_months: float = 12.0
    overdue_grace_days: int = 0
    # Baseline values for risk scores: taken from this many days before the TKI start up to the start.
    baseline_window_days: int = 90
    # Adherence and mutation results count for the current episode when this recent.
    workup_lookback_days: int = 183
    # After a molecular relapse off treatment (TFR): restart the same TKI within 4 weeks (ELN 2020);
    # RQ-PCR every 4-6 weeks until MMR is regained; mutation analysis only if MMR is not regained
    # within 3-6 months of restarting (Soverini et al. 2019): the end of that range by default.
    restart_within_days: int = 28
    retreatment_interval_days: int = 42
    retreatment_mmr_months: float = 6.0
    # Patients younger than this are children: TFR only within studies, adult scores with caution.
    adult_age_years: int = 18

    @property
    def fingerprint(self) -> str:
        """A stable text of every value, e.g. for the identifiers of what is written back: two
        assessments made with different values must not share one."""
        return ";".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self))

    @classmethod
    def from_mapping(cls, values: Mapping[str, object]) -> RuleConfig:
        """The defaults with ``values`` applied; a ValueError names an unknown field or a value
        of the wrong type or out of range."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown rule settings: {', '.join(unknown)}")
        changed: dict[str, object] = {}
        for name, value in values.items():
            default = getattr(DEFAULT_CONFIG, name)
            changed[name] = _typed(name, value, default)
        return replace(DEFAULT_CONFIG, **changed)  # type: ignore[arg-type]

    def changed(self) -> dict[str, object]:
        """The values that differ from the defaults (what the output should name)."""
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if getattr(self, f.name) != getattr(DEFAULT_CONFIG, f.name)
        }


DEFAULT_CONFIG = RuleConfig()


def _typed(name: str, value: object, default: object) -> object:
    """``value`` as the type of the default (int, float, or a (low, high) pair of ints), > 0."""
    if isinstance(default, tuple):
        pair = value if isinstance(value, (list, tuple)) else None
        if (
            pair is None
            or len(pair) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in pair)
            or pair[0] > pair[1]
        ):
            raise ValueError(f"{name}: expected [low, high], two whole numbers above 0")
        return (pair[0], pair[1])
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name}: expected a number, got {value!r}")
    if isinstance(default, int) and not isinstance(value, int):
        if not float(value).is_integer():
            raise ValueError(f"{name}: expected a whole number, got {value!r}")
        value = int(value)
    if value < 0 or (value == 0 and name != "overdue_grace_days"):
        raise ValueError(f"{name}: must be above 0, got {value!r}")
    return float(value) if isinstance(default, float) else value


# What each setting means, for docs/rules.md and the output (one line each, with its source).
MEANING: dict[str, str] = {
    "milestone_tolerance_months": "a result counts for a milestone from this many months before "
    "it (project convention)",
    "confirm_window_days": "ELN 2020 at 3 months: a later result > 10 % this many days after "
    'confirms the failure ("within 1-3 months")',
    "stable_mmr_months_for_reduction": "months of stable MMR before a dose reduction is suggested "
    "(the sources say 1-2 years)",
    "tdm_min_days_on_therapy": "a trough counts after this many days of therapy (the reference "
    "laboratory's steady state)",
    "tdm_min_days_since_dose_change": "... and this many days without a dose change",
    "trough_timing_tolerance_hours": "a trough is accepted this many hours either side of the "
    "dosing interval (project convention)",
    "trough_target_ng_ml": "imatinib trough below this is subtherapeutic (Picard et al. 2007)",
    "trough_supratherapeutic_ng_ml": "imatinib trough at or above this is supratherapeutic "
    "(laboratories' toxicity watch)",
    "early_monitoring_months": "monthly RQ-PCR during the first this many months on TKI "
    "(project default)",
    "early_interval_days": "the interval of that early monitoring",
    "standard_interval_days": "RQ-PCR interval on TKI after that (every 3 months, ELN 2020)",
    "after_reduction_interval_days": "RQ-PCR interval after a dose reduction (every 4-6 weeks)",
    "after_reduction_months": "... for this many months after the reduction (6-12 months)",
    "overdue_grace_days": "days past the due date before a PCR is called overdue",
    "baseline_window_days": "baseline values for the risk scores: from this many days before the "
    "TKI start",
    "workup_lookback_days": "an adherence assessment or mutation analysis counts for the current "
    "episode when this recent",
    "restart_within_days": "after a relapse off treatment, restart the TKI within this many days "
    "(4 weeks, ELN 2020)",
    "retreatment_interval_days": "RQ-PCR interval after the restart until MMR is regained "
    "(every 4-6 weeks)",
    "retreatment_mmr_months": "mutation analysis when MMR is not regained this many months after "
    "the restart (3-6 months, Soverini et al. 2019)",
    "adult_age_years": "below this age a patient is a child: TFR only within studies, adult "
    "scores read with caution",
}
