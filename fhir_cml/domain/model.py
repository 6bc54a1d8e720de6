"""The patient record as the response model sees it.

Plain, immutable values. Every value keeps ``ref``: the reference of the resource it came from
("Observation/123"), so each conclusion can name its inputs. The FHIR adapters build these; the
rules read them. Units are fixed here (documented per field); conversion happens on the way in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from fhir_cml.domain.basis import Basis
from fhir_cml.domain.frozen import quick_init
from fhir_cml.domain.vocabulary import (
    ControlGene,
    Cyp3a4Effect,
    IssueCode,
    LabKind,
    MedicationStatus,
    Phase,
    Severity,
    StopReason,
    Tki,
    Transcript,
)

Day = date  # for fields declared after a field named "date"


@quick_init
@dataclass(frozen=True, slots=True)
class Issue:
    """Something the reader or the rules could not use, or want a human to look at.

    The FHIR reader words its issues in ``message``; the rules give a structured ``basis``
    instead (``message`` empty), which :func:`fhir_cml.reporting.issue_message` words.
    """

    severity: Severity
    code: IssueCode
    message: str
    resource: str | None = None
    basis: Basis | None = None


@quick_init
@dataclass(frozen=True, slots=True)
class BcrAbl1Result:
    """One BCR::ABL1 quantification.

    ``is_percent`` is on the International Scale (reported on the IS, or converted with the
    laboratory conversion factor); it is None when the result is not on the IS and cannot be
    converted, or when the transcript was not detected and no detection limit was given.
    """

    ref: str
    date: date
    detectable: bool
    is_percent: float | None
    on_is: bool
    raw_percent: float | None = None  # as reported, on the laboratory's own scale
    conversion_factor: float | None = None
    control_gene: ControlGene | None = None
    control_copies: int | None = None
    transcript: Transcript | None = None
    derived_from: str = "percent"  # percent | ratio | log-reduction | undetectable | limit


@quick_init
@dataclass(frozen=True, slots=True)
class CytogeneticResult:
    """Ph+ (t(9;22)) cells as a percentage: metaphase banding or interphase FISH."""

    ref: str
    date: date
    ph_positive_percent: float
    method: str = "banding"  # banding | fish
    metaphases: int | None = None
    clonal_abnormality_in_ph_positive: bool | None = None
    high_risk_aca: bool | None = None


@quick_init
@dataclass(frozen=True, slots=True)
class LabValue:
    """A blood count or clinical finding; units per :class:`LabKind`."""

    ref: str
    date: date
    kind: LabKind
    value: float


@quick_init
@dataclass(frozen=True, slots=True)
class HematologicResponse:
    """A coded statement that the patient is (or is not) in complete hematologic response."""

    ref: str
    date: date
    complete: bool


@quick_init
@dataclass(frozen=True, slots=True)
class TroughLevel:
    """A TKI plasma level in ng/mL (imatinib: 1 umol/L = 493.6 ng/mL)."""

    ref: str
    date: date
    ng_ml: float
    drug: Tki = Tki.IMATINIB
    hours_since_dose: float | None = None
    # The code itself names a trough (LOINC 103609-4, "--trough"); False for a level whose code
    # has no timing (LOINC 57844-3), which is a trough only when the time since the dose is given.
    trough_by_code: bool = True


@quick_init
@dataclass(frozen=True, slots=True)
class MutationResult:
    """A BCR::ABL1 kinase-domain mutation analysis.

    ``mutation`` is the one-letter protein change ("T315I"); None with ``detected=False`` is a
    negative analysis, which matters too: it shows the analysis was done.
    """

    ref: str
    date: date
    detected: bool
    mutation: str | None = None
    hgvs: str | None = None


@quick_init
@dataclass(frozen=True, slots=True)
class AdherenceAssessment:
    ref: str
    date: date
    adherent: bool


@quick_init
@dataclass(frozen=True, slots=True)
class AdverseEvent:
    """An adverse event attributed to the TKI; ``affects_quality_of_life`` when it is said to."""

    ref: str
    date: date
    description: str
    affects_quality_of_life: bool = True
    resolved: Day | None = None


@quick_init
@dataclass(frozen=True, slots=True)
class TkiStatement:
    """One MedicationStatement for a TKI: what, how much per day, when, and why it ended."""

    ref: str
    drug: Tki
    status: MedicationStatus
    start: date | None
    end: date | None = None
    daily_dose_mg: float | None = None
    doses_per_day: int | None = None
    stop_reason: StopReason | None = None
    status_reason_text: str | None = None
    asserted: date | None = None
    # For an order with no stated end: when its supply runs out (stated or estimated). An active
    # order long past it is read as taken, as its status says, with a warning relative to as-of.
    supplied_to: date | None = None


@quick_init
@dataclass(frozen=True, slots=True)
class OtherMedication:
    """A non-TKI medication, kept when it changes TKI exposure through CYP3A4."""

    ref: str
    name: str
    status: MedicationStatus
    effect: Cyp3a4Effect
    start: date | None = None
    end: date | None = None


@quick_init
@dataclass(frozen=True, slots=True)
class Diagnosis:
    ref: str
    phase: Phase | None = None
    onset: date | None = None


@quick_init
@dataclass(frozen=True, slots=True)
class UnreadResult:
    """A result that was done but could not be read (a text value, an unknown unit, ...).

    It is kept so that the rules do not take its absence for a test never done (e.g. a PCR
    "overdue" when the laboratory sent one that fhir-cml cannot read). ``date`` is None when the
    result gives none that can be read.
    """

    ref: str
    date: date | None
    reason: str


@quick_init
@dataclass(frozen=True, slots=True)
class PatientRecord:
    """All a patient's inputs, each list ordered by date (oldest first)."""

    patient: str
    birth_date: date | None = None
    diagnoses: tuple[Diagnosis, ...] = ()
    bcr_abl1: tuple[BcrAbl1Result, ...] = ()
    cytogenetics: tuple[CytogeneticResult, ...] = ()
    labs: tuple[LabValue, ...] = ()
    hematologic: tuple[HematologicResponse, ...] = ()
    troughs: tuple[TroughLevel, ...] = ()
    mutations: tuple[MutationResult, ...] = ()
    adherence: tuple[AdherenceAssessment, ...] = ()
    adverse_events: tuple[AdverseEvent, ...] = ()
    tki: tuple[TkiStatement, ...] = ()
    other_medications: tuple[OtherMedication, ...] = ()
    issues: tuple[Issue, ...] = field(default=())
    transcript: Transcript | None = None
    transcript_ref: str | None = None
    unread_bcr_abl1: tuple[UnreadResult, ...] = ()  # BCR::ABL1 results present but not read
