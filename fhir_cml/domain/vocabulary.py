"""The response model's codes.

These strings are the contract: they appear in the JSON output, as codes in the project's
CodeSystems (profiles/) and as CarePlan activity codes. Add members; never rename one.
"""

from __future__ import annotations

from enum import StrEnum


class Guideline(StrEnum):
    ELN2020 = "eln2020"
    ELN2013 = "eln2013"
    ELN2009 = "eln2009"  # Baccarani et al., J Clin Oncol 2009 (cytogenetic era)

    @property
    def label(self) -> str:
        """The name a reader knows the guideline by ("ELN 2020"), for titles and text."""
        return f"ELN {self.value[3:]}"


class ResponseDepth(StrEnum):
    MR5 = "MR5"
    MR4_5 = "MR4.5"
    MR4 = "MR4"
    MMR = "MMR"
    NO_MMR = "no-MMR"
    NOT_EVALUABLE = "not-evaluable"


class ElnStatus(StrEnum):
    OPTIMAL = "optimal"
    WARNING = "warning"  # ELN 2013 / 2020
    SUBOPTIMAL = "suboptimal"  # eln2009 only
    FAILURE = "failure"
    NOT_EVALUABLE = "not-evaluable"


class Milestone(StrEnum):
    M3 = "3m"
    M6 = "6m"
    M12 = "12m"
    M18 = "18m"
    ANY = "any"
    BASELINE = "baseline"  # at diagnosis, before TKI


class TfrStatus(StrEnum):
    ELIGIBLE = "eligible"
    NOT_ELIGIBLE = "not-eligible"
    IN_TFR = "in-tfr"
    MOLECULAR_RELAPSE = "molecular-relapse"
    NOT_EVALUABLE = "not-evaluable"


class TdmStatus(StrEnum):
    ADEQUATE = "adequate"
    SUBTHERAPEUTIC = "subtherapeutic"
    SUPRATHERAPEUTIC = "supratherapeutic"
    TIMING_INVALID = "timing-invalid"
    TIMING_UNKNOWN = "timing-unknown"  # a level without the time since the last dose: not a trough
    NONE = "none"


class TherapyStatus(StrEnum):
    ACTIVE = "active"  # taking a TKI on the as-of date
    INTERRUPTED = "interrupted"  # on hold, or a gap between courses
    STOPPED = "stopped"  # stopped for a reason other than TFR
    TFR = "tfr"  # stopped to attempt treatment-free remission
    NONE = "none"  # no usable TKI statement


class RiskCategory(StrEnum):
    LOW = "low"
    INTERMEDIATE = "intermediate"
    HIGH = "high"
    NOT_EVALUABLE = "not-evaluable"


class Recommendation(StrEnum):
    CONTINUE_THERAPY = "continue-therapy"
    REPEAT_PCR = "repeat-pcr"
    CHECK_ADHERENCE = "check-adherence"
    MEASURE_TROUGH_LEVEL = "measure-trough-level"
    MUTATION_ANALYSIS = "mutation-analysis"
    ESCALATE_DOSE = "escalate-dose"
    SWITCH_TKI = "switch-tki"
    CONSIDER_DOSE_REDUCTION = "consider-dose-reduction"
    DISCUSS_TFR = "discuss-tfr"
    RESTART_TKI = "restart-tki"
    INTENSIFY_MONITORING = "intensify-monitoring"
    SCHEDULE_PCR = "schedule-pcr"
    PCR_OVERDUE = "pcr-overdue"
    REVIEW_INTERACTIONS = "review-interactions"


class Tki(StrEnum):
    IMATINIB = "imatinib"
    DASATINIB = "dasatinib"
    NILOTINIB = "nilotinib"
    BOSUTINIB = "bosutinib"
    PONATINIB = "ponatinib"
    ASCIMINIB = "asciminib"

    @property
    def generation(self) -> int:
        """1 for imatinib, 2 for dasatinib/nilotinib/bosutinib, 3 for ponatinib/asciminib."""
        return _GENERATION[self]


_GENERATION = {
    Tki.IMATINIB: 1,
    Tki.DASATINIB: 2,
    Tki.NILOTINIB: 2,
    Tki.BOSUTINIB: 2,
    Tki.PONATINIB: 3,
    Tki.ASCIMINIB: 3,
}


class ControlGene(StrEnum):
    ABL1 = "ABL1"
    GUSB = "GUSB"


class Transcript(StrEnum):
    E13A2 = "e13a2"
    E14A2 = "e14a2"
    E13A2_E14A2 = "e13a2+e14a2"
    E1A2 = "e1a2"
    ATYPICAL = "atypical"

    @property
    def typical(self) -> bool:
        """Only e13a2/e14a2 (p210) transcripts can be reported on the IS (Cross 2015)."""
        return self in (Transcript.E13A2, Transcript.E14A2, Transcript.E13A2_E14A2)


class Phase(StrEnum):
    CHRONIC = "chronic"
    ACCELERATED = "accelerated"
    BLAST = "blast"


class MedicationStatus(StrEnum):
    """FHIR R4 MedicationStatement.status, kept as-is."""

    ACTIVE = "active"
    COMPLETED = "completed"
    ENTERED_IN_ERROR = "entered-in-error"
    INTENDED = "intended"
    STOPPED = "stopped"
    ON_HOLD = "on-hold"
    UNKNOWN = "unknown"
    NOT_TAKEN = "not-taken"


class StopReason(StrEnum):
    """Why a TKI course ended, as far as the record says."""

    TFR = "tfr"  # discontinued to attempt treatment-free remission
    INTOLERANCE = "intolerance"  # adverse events
    RESISTANCE = "resistance"  # failure, resistance, progression
    DOSE_CHANGE = "dose-change"  # the course continues at another dose
    OTHER = "other"
    UNKNOWN = "unknown"


class LabKind(StrEnum):
    """Blood counts and clinical findings used for CHR and the baseline risk scores."""

    WBC = "wbc"  # 10^9/L
    PLATELETS = "platelets"  # 10^9/L
    BASOPHILS = "basophils"  # % of leukocytes in peripheral blood
    BLASTS = "blasts"  # % of leukocytes in peripheral blood
    SPLEEN = "spleen"  # cm below the costal margin


class Cyp3a4Effect(StrEnum):
    STRONG_INHIBITOR = "strong-inhibitor"
    STRONG_INDUCER = "strong-inducer"


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFORMATION = "information"


class IssueCode(StrEnum):
    """Why a resource or value was set aside or needs a look. Stable like the other codes."""

    UNREADABLE = "unreadable"  # not JSON / not a FHIR resource
    UNSUPPORTED_TYPE = "unsupported-type"
    UNKNOWN_CODE = "unknown-code"
    UNKNOWN_UNIT = "unknown-unit"
    MISSING_DATE = "missing-date"
    FUTURE_DATE = "future-date"
    AFTER_AS_OF = "after-as-of"
    OUT_OF_RANGE = "out-of-range"
    MISSING_VALUE = "missing-value"
    NO_SUBJECT = "no-subject"
    NOT_ON_IS = "not-on-is"
    NOT_TYPICAL_TRANSCRIPT = "atypical-transcript"
    LOW_CONTROL_COPIES = "low-control-copies"
    MISSING_CONTROL_COPIES = "missing-control-copies"
    STATUS_IGNORED = "status-ignored"  # entered-in-error, cancelled, preliminary, ...
    SUPERSEDED = "superseded"  # replaced by an amended/corrected result
    DUPLICATE = "duplicate"
    NO_THERAPY_START = "no-therapy-start"
    AMBIGUOUS = "ambiguous"
    INFERRED = "inferred"  # a conclusion drawn from the course rather than a coded fact
    TROUGH_NOT_IMATINIB = "trough-not-imatinib"
