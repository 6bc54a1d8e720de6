"""The reading in one line: what a banner, a card summary or a list row shows first."""

from __future__ import annotations

from fhir_cml.domain.results import Assessment
from fhir_cml.domain.vocabulary import Milestone, TfrStatus
from fhir_cml.reporting.words import pct

_MILESTONES = {
    Milestone.M3: "at 3 months",
    Milestone.M6: "at 6 months",
    Milestone.M12: "at 12 months",
    Milestone.M18: "at 18 months",
    Milestone.ANY: "(any time)",
    Milestone.BASELINE: "at baseline",
}
_DEPTH = {"no-MMR": "no MMR", "not-evaluable": "response not evaluable"}


def milestone_words(milestone: Milestone | None) -> str:
    return _MILESTONES[milestone] if milestone is not None else ""


def depth_words(a: Assessment) -> str:
    return _DEPTH.get(a.molecular_response.depth.value, a.molecular_response.depth.value)


def status_parts(a: Assessment, *, next_pcr: bool = True) -> list[str]:
    """The parts of the one-line status: relapse, the guideline reading, the latest result, an
    overdue PCR (and, with ``next_pcr``, when the next one is due)."""
    parts: list[str] = []
    if a.tfr.status is TfrStatus.MOLECULAR_RELAPSE:
        parts.append("molecular relapse after stopping TKI")
    reading = f"{a.guideline.label} {a.eln.status.value}"
    if a.eln.milestone is not None:
        reading += f" {milestone_words(a.eln.milestone)}"
    parts.append(reading)
    depth = depth_words(a)
    latest = a.latest_bcr_abl1
    if latest is not None and latest.is_percent is not None:
        depth += f", BCR::ABL1 {pct(latest.is_percent)} ({latest.date.isoformat()})"
    parts.append(depth)
    if a.monitoring.overdue and a.monitoring.next_pcr_due is not None:
        parts.append(f"RQ-PCR overdue since {a.monitoring.next_pcr_due.isoformat()}")
    elif next_pcr and a.monitoring.next_pcr_due is not None:
        parts.append(f"next RQ-PCR by {a.monitoring.next_pcr_due.isoformat()}")
    return parts


def status_line(a: Assessment) -> str:
    """E.g. "ELN 2020 warning at 6 months; no MMR, BCR::ABL1 3.5 % (2025-05-26); next RQ-PCR by
    2025-08-25"."""
    return "; ".join(status_parts(a))
