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

from fhir_cml.domain.frozen import quick_init
from fhir_cml.domain.model import HematologicResponse, LabValue
from fhir_cml.domain.vocabulary import LabKind

_LIMITS = {
    LabKind.WBC: (10.0, "WBC {v:g} x10^9/L (CHR needs < 10)"),
    LabKind.PLATELETS: (450.0, "platelets {v:g} x10^9/L (CHR needs < 450)"),
    LabKind.BASOPHILS: (5.0, "basophils {v:g} % (CHR needs < 5 %)"),
}
_REQUIRED = (LabKind.WBC, LabKind.PLATELETS, LabKind.BASOPHILS)


@quick_init
@dataclass(frozen=True, slots=True)
class ChrAssessment:
    date: date
    complete: bool
    refs: tuple[str, ...]
    statement: str


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
        word = "in" if finding.complete else "not in"
        out.append(
            ChrAssessment(
                finding.date,
                finding.complete,
                (finding.ref,),
                f"Recorded as {word} complete hematologic response on {finding.date.isoformat()}.",
            )
        )
    out.sort(key=_BY_DATE)
    return out


def _from_counts(day: date, values: dict[LabKind, LabValue]) -> ChrAssessment | None:
    if LabKind.WBC not in values and LabKind.PLATELETS not in values:
        return None
    abnormal: list[str] = []
    for kind, (limit, text) in _LIMITS.items():
        lab = values.get(kind)
        if lab is not None and lab.value >= limit:
            abnormal.append(text.format(v=lab.value))
    blasts = values.get(LabKind.BLASTS)
    if blasts is not None and blasts.value > 0:
        abnormal.append(f"blasts {blasts.value:g} % in peripheral blood (CHR needs none)")
    spleen = values.get(LabKind.SPLEEN)
    if spleen is not None and spleen.value > 0:
        abnormal.append(f"spleen palpable {spleen.value:g} cm below the costal margin")
    refs = tuple(v.ref for v in values.values())
    when = day.isoformat()
    if abnormal:
        return ChrAssessment(day, False, refs, f"No CHR on {when}: " + "; ".join(abnormal) + ".")
    if all(kind in values for kind in _REQUIRED):
        unrecorded = [k.value for k in (LabKind.BLASTS, LabKind.SPLEEN) if k not in values]
        note = f" ({', '.join(unrecorded)} not recorded)" if unrecorded else ""
        return ChrAssessment(
            day, True, refs, f"CHR on {when}: WBC, platelets and basophils within limits{note}."
        )
    return None
