"""What the response model concludes about one patient, and why.

Every conclusion carries a :class:`~fhir_cml.domain.basis.Basis`: the rule (with its citations),
what it found with the values it compared, and the inputs it used. Results carry codes and values,
never finished sentences: :mod:`fhir_cml.reporting` words them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from fhir_cml.domain.basis import Basis, Params
from fhir_cml.domain.config import DEFAULT_CONFIG, RuleConfig
from fhir_cml.domain.findings import Finding
from fhir_cml.domain.frozen import quick_init
from fhir_cml.domain.model import BcrAbl1Result, Issue, TroughLevel
from fhir_cml.domain.vocabulary import (
    ElnStatus,
    Guideline,
    Milestone,
    Recommendation,
    ResponseDepth,
    RiskCategory,
    StopReason,
    TdmStatus,
    TfrStatus,
    TherapyStatus,
    Tki,
)


@quick_init
@dataclass(frozen=True, slots=True)
class DoseSegment:
    """A stretch of time on one TKI at one daily dose; ``end`` None while it continues."""

    drug: Tki
    daily_dose_mg: float | None
    start: date
    end: date | None
    ref: str
    stop_reason: StopReason | None = None
    doses_per_day: int | None = None
    on_hold: bool = False


@quick_init
@dataclass(frozen=True, slots=True)
class Gap:
    """Time off TKI between two segments, or an on-hold period."""

    start: date
    end: date | None
    ref: str | None = None


@quick_init
@dataclass(frozen=True, slots=True)
class Therapy:
    """The TKI course: where therapy time runs from, what the patient takes now, what changed."""

    status: TherapyStatus
    drug: Tki | None = None
    daily_dose_mg: float | None = None
    start: date | None = None  # start of first-line TKI: therapy time runs from here
    current_start: date | None = None  # start of the current drug
    last_dose_change: date | None = None
    months_on_therapy: float | None = None
    line: int = 0
    segments: tuple[DoseSegment, ...] = ()
    gaps: tuple[Gap, ...] = ()
    stopped_on: date | None = None
    stop_reason: StopReason | None = None
    last_reduction: date | None = None
    switched_for_resistance: bool = False
    switch_reasons_known: bool = True
    evidence: tuple[str, ...] = ()
    # Time off TKI after each stop for treatment-free remission (the last open while still off):
    # results then are off treatment, not read against the milestones.
    tfr_stops: tuple[Gap, ...] = ()
    restarted: date | None = None  # the TKI restarted after the latest TFR stop, on this day


@quick_init
@dataclass(frozen=True, slots=True)
class MolecularResponse:
    depth: ResponseDepth
    result: BcrAbl1Result | None
    basis: Basis


@quick_init
@dataclass(frozen=True, slots=True)
class MilestoneReading:
    """The guideline's reading of one result at its time on therapy."""

    date: date
    months: float
    milestone: Milestone | None
    status: ElnStatus
    basis: Basis
    kind: str = "molecular"  # molecular | cytogenetic | hematologic
    # Why this result was read here: milestone (the one read at the milestone), interim (a later
    # result in the milestone's window: it can make the reading worse, never better), early (before
    # the result read at the milestone), any-time, off-treatment (after a stop for TFR, not read
    # against the milestones), retreatment (after a restart following a relapse off treatment),
    # unreadable
    role: str = "milestone"


@quick_init
@dataclass(frozen=True, slots=True)
class ElnReading:
    status: ElnStatus
    milestone: Milestone | None
    reasons: tuple[Basis, ...]
    history: tuple[MilestoneReading, ...] = ()


@quick_init
@dataclass(frozen=True, slots=True)
class LossOfMmr:
    """Loss of a previously achieved MMR; ``confirmed`` needs two consecutive results > 0.1 %."""

    lost: bool
    confirmed: bool = False
    confirmed_eln2013: bool = False  # two consecutive, one of them >= 1 %
    basis: Basis | None = None


@quick_init
@dataclass(frozen=True, slots=True)
class TfrReading:
    status: TfrStatus
    reasons: tuple[Basis, ...]
    optimal_criteria_met: bool | None = None
    stopped_on: date | None = None
    months_since_stop: float | None = None
    stim1_relapse: bool | None = None
    # What the clinician is asked to confirm (eligible, confirm ...): facts rarely recorded.
    to_confirm: tuple[Basis, ...] = ()
    # After a molecular relapse off treatment: when the TKI was restarted and MMR regained.
    relapse_on: date | None = None
    restarted_on: date | None = None
    mmr_regained_on: date | None = None


@quick_init
@dataclass(frozen=True, slots=True)
class TdmReading:
    status: TdmStatus
    trough: TroughLevel | None
    basis: Basis | None
    at_current_dose: bool = False


@quick_init
@dataclass(frozen=True, slots=True)
class RiskScore:
    name: str  # sokal | elts | eutos
    value: float | None
    category: RiskCategory
    basis: Basis


@quick_init
@dataclass(frozen=True, slots=True)
class Interaction:
    medication: str
    effect: str
    ref: str
    basis: Basis


@quick_init
@dataclass(frozen=True, slots=True)
class Monitoring:
    next_pcr_due: date | None
    overdue: bool
    interval_days: int | None
    phase: str  # early | standard | after-dose-reduction | tfr-first-6-months | ... | undefined
    basis: Basis


@quick_init
@dataclass(frozen=True, slots=True)
class Suggestion:
    """One recommendation: a code from the project's CodeSystem, words, and its basis."""

    code: Recommendation
    finding: Finding
    params: Params
    basis: tuple[Basis, ...]


@quick_init
@dataclass(frozen=True, slots=True)
class Prediction:
    """Trial evidence that applies to the patient's situation (drug, line, mutation, phase)."""

    outcome: str  # a code: progression-ap-bc | molecular-relapse-after-stop
    finding: Finding
    params: Params
    probability: float | None
    years: float | None
    basis: Basis


@quick_init
@dataclass(frozen=True, slots=True)
class Assessment:
    patient: str
    as_of: date
    guideline: Guideline
    ruleset_version: str
    therapy: Therapy
    latest_bcr_abl1: BcrAbl1Result | None
    molecular_response: MolecularResponse
    loss_of_mmr: LossOfMmr
    eln: ElnReading
    tfr: TfrReading
    tdm: TdmReading
    risk_scores: tuple[RiskScore, ...]
    interactions: tuple[Interaction, ...]
    monitoring: Monitoring
    recommendations: tuple[Suggestion, ...]
    predictions: tuple[Prediction, ...]
    issues: tuple[Issue, ...]
    inputs: tuple[str, ...] = field(default=())
    config: RuleConfig = DEFAULT_CONFIG  # the values the rules used (see RuleConfig.changed)

    @property
    def risk(self) -> dict[str, RiskScore]:
        return {score.name: score for score in self.risk_scores}
