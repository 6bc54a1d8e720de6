"""Thresholds the rules read that a clinic may set.

Defaults follow clinical-rules.md. Where the sources give a range ("1-2 years", "every 4-6 weeks")
the default is named in the output together with the range, so a reader sees the choice.
"""

from __future__ import annotations

from dataclasses import dataclass, fields


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

    def changed(self) -> dict[str, object]:
        """The values that differ from the defaults (what the output should name)."""
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if getattr(self, f.name) != getattr(DEFAULT_CONFIG, f.name)
        }


DEFAULT_CONFIG = RuleConfig()
