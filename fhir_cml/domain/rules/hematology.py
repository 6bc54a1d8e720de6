"""Complete hematologic response (CHR) from blood counts, or from a coded finding.

CHR (ELN): WBC < 10 x10^9/L, platelets < 450 x10^9/L, basophils < 5 %, no blasts (immature cells)
in peripheral blood, spleen not palpable. Any abnormal value rules CHR out; CHR is called only when
WBC, platelets and basophils are all present on the same day.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from operator import attrgetter

from fhir_cml.domain.basis import Basis, basis
from fhir_cml.domain.findings import Finding
from fhir_cml.domain.model import HematologicResponse, LabValue
from fhir_cml.domain.rules.catalogue import CHR
from fhir_cml.domain.vocabulary import LabKind

# CHR needs each count below its limit (ELN 2013 response definitions).
LIMITS: dict[LabKind, float] = {LabKind.WBC: 10.0, LabKind.PLATELETS: 450.0, LabKind.BASOPHILS: 5.0}
_REQUIRED = (LabKind.WBC, LabKind.PLATELETS, LabKind.BASOPHILS)


@dataclass(frozen=True, slots=True)
class ChrAssessment:
    date: date
    complete: bool
    refs: tuple[str, ...]
    basis: Basis


_BY_DATE = attrgetter("date")


def chr_assessments(
    labs: tuple[LabValue, ...], coded: tuple[HematologicResponse, ...]
) -> list[ChrAssessment]:
    by_day: dict[date, dict[LabKind, LabValue]] = defaultdict(dict)
    for lab in labs:
        by_day[lab.date][lab.kind] = lab
    out: list[ChrAssessment] = []
    for day, values in by_day.items():
        call = _from_counts(day, values)
        if call is not None:
            out.append(call)
    for finding in coded:
        refs = (finding.ref,)
        out.append(
            ChrAssessment(
                finding.date,
                finding.complete,
                refs,
                basis(
                    CHR, Finding.CHR_RECORDED, refs, date=finding.date, complete=finding.complete
                ),
            )
        )
    out.sort(key=_BY_DATE)
    return out


def _from_counts(day: date, values: dict[LabKind, LabValue]) -> ChrAssessment | None:
    """CHR from one day's counts; each abnormal value is named as (kind, value, limit)."""
    if LabKind.WBC not in values and LabKind.PLATELETS not in values:
        return None
    abnormal: list[tuple[LabKind, float, float]] = []
    for kind, limit in LIMITS.items():
        lab = values.get(kind)
        if lab is not None and lab.value >= limit:
            abnormal.append((kind, lab.value, limit))
    for kind in (LabKind.BLASTS, LabKind.SPLEEN):  # none allowed: no blasts, spleen not palpable
        lab = values.get(kind)
        if lab is not None and lab.value > 0:
            abnormal.append((kind, lab.value, 0.0))
    refs = tuple(v.ref for v in values.values())
    if abnormal:
        return ChrAssessment(
            day,
            False,
            refs,
            basis(CHR, Finding.CHR_ABSENT, refs, date=day, abnormal=tuple(abnormal)),
        )
    if all(kind in values for kind in _REQUIRED):
        unrecorded = tuple(k for k in (LabKind.BLASTS, LabKind.SPLEEN) if k not in values)
        return ChrAssessment(
            day, True, refs, basis(CHR, Finding.CHR_PRESENT, refs, date=day, unrecorded=unrecorded)
        )
    return None
