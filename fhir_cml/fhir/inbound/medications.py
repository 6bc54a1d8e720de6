"""MedicationStatements: TKI courses, and the strong CYP3A4 modulators taken alongside.

The drug is read from the statement's code or its Medication (contained or in the input), by
RxNorm or ATC code, else by the name or brand in the text (said in an issue). Daily dose is the
dose in mg times the doses per day; a tablet count is converted when the code gives the strength.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from fhir_cml.domain.model import OtherMedication, TkiStatement
from fhir_cml.domain.rules.interactions import STRONG_CYP3A4
from fhir_cml.domain.vocabulary import IssueCode, MedicationStatus, StopReason, Tki
from fhir_cml.fhir import canonical as c
from fhir_cml.fhir.inbound import units
from fhir_cml.fhir.inbound.context import (
    MappingContext,
    as_dict,
    as_list,
    as_str,
    codings,
    concept_words,
    number,
    quoted,
)
from fhir_cml.fhir.inbound.loader import Entry
from fhir_cml.fhir.inbound.references import literal

# RxNorm: each TKI's ingredient (IN), and the clinical (SCD) and branded (SBD) drugs, whose
# strength converts a tablet count. Ingredient codes checked against RxNav's ingredient concepts;
# the imatinib products against the Gleevec NDC-RxNorm crosswalk; the dasatinib and bosutinib
# products against the RxNorm value set of NMDP's CIBMTR reporting guide (nmdp-ig/
# cibmtr-reporting-ig, med-form2400-post-hct-disease-therapy-valueset.fsh), which lists each
# code with its RxNorm name. Nilotinib, ponatinib and asciminib products are read through their
# Medication's ingredient, a site ConceptMap, or the name (docs/inbound.md says why).
_TKI_PRODUCTS: Final = {
    "403878": (Tki.IMATINIB, 100.0),  # imatinib 100 MG Oral Tablet
    "403879": (Tki.IMATINIB, 400.0),  # imatinib 400 MG Oral Tablet
    "404588": (Tki.IMATINIB, 100.0),  # imatinib 100 MG Oral Tablet [Gleevec]
    "404589": (Tki.IMATINIB, 400.0),  # imatinib 400 MG Oral Tablet [Gleevec]
    "643105": (Tki.DASATINIB, 20.0),  # dasatinib 20 MG Oral Tablet
    "643107": (Tki.DASATINIB, 50.0),  # dasatinib 50 MG Oral Tablet
    "643109": (Tki.DASATINIB, 70.0),  # dasatinib 70 MG Oral Tablet
    "1045406": (Tki.DASATINIB, 80.0),  # dasatinib 80 MG Oral Tablet
    "799047": (Tki.DASATINIB, 100.0),  # dasatinib 100 MG Oral Tablet
    "1045402": (Tki.DASATINIB, 140.0),  # dasatinib 140 MG Oral Tablet
    "643173": (Tki.DASATINIB, 20.0),  # dasatinib 20 MG Oral Tablet [Sprycel]
    "643175": (Tki.DASATINIB, 50.0),  # dasatinib 50 MG Oral Tablet [Sprycel]
    "643177": (Tki.DASATINIB, 70.0),  # dasatinib 70 MG Oral Tablet [Sprycel]
    "1045408": (Tki.DASATINIB, 80.0),  # dasatinib 80 MG Oral Tablet [Sprycel]
    "799830": (Tki.DASATINIB, 100.0),  # dasatinib 100 MG Oral Tablet [Sprycel]
    "1045404": (Tki.DASATINIB, 140.0),  # dasatinib 140 MG Oral Tablet [Sprycel]
    "1307624": (Tki.BOSUTINIB, 100.0),  # bosutinib 100 MG Oral Tablet
    "1987732": (Tki.BOSUTINIB, 400.0),  # bosutinib 400 MG Oral Tablet
    "1307633": (Tki.BOSUTINIB, 500.0),  # bosutinib 500 MG Oral Tablet
    "1307630": (Tki.BOSUTINIB, 100.0),  # bosutinib 100 MG Oral Tablet [Bosulif]
    "1987734": (Tki.BOSUTINIB, 400.0),  # bosutinib 400 MG Oral Tablet [Bosulif]
    "1307635": (Tki.BOSUTINIB, 500.0),  # bosutinib 500 MG Oral Tablet [Bosulif]
}
TKI_RXNORM: Final = {
    "282388": Tki.IMATINIB,
    "475342": Tki.DASATINIB,
    "662281": Tki.NILOTINIB,
    "1307619": Tki.BOSUTINIB,
    "1364347": Tki.PONATINIB,
    "2584304": Tki.ASCIMINIB,
    **{code: tki for code, (tki, _) in _TKI_PRODUCTS.items()},
}
_TABLET_MG: Final = {code: mg for code, (_, mg) in _TKI_PRODUCTS.items()}
TKI_ATC: Final = {
    "L01EA01": Tki.IMATINIB,
    "L01EA02": Tki.DASATINIB,
    "L01EA03": Tki.NILOTINIB,
    "L01EA04": Tki.BOSUTINIB,
    "L01EA05": Tki.PONATINIB,
    "L01EA06": Tki.ASCIMINIB,
}
_TKI_NAMES: Final = (
    ("imatinib", Tki.IMATINIB),
    ("gleevec", Tki.IMATINIB),
    ("glivec", Tki.IMATINIB),
    ("dasatinib", Tki.DASATINIB),
    ("sprycel", Tki.DASATINIB),
    ("nilotinib", Tki.NILOTINIB),
    ("tasigna", Tki.NILOTINIB),
    ("bosutinib", Tki.BOSUTINIB),
    ("bosulif", Tki.BOSUTINIB),
    ("ponatinib", Tki.PONATINIB),
    ("iclusig", Tki.PONATINIB),
    ("asciminib", Tki.ASCIMINIB),
    ("scemblix", Tki.ASCIMINIB),
)
CYP3A4_ATC: Final = {
    "J02AB02": "ketoconazole",
    "J02AC02": "itraconazole",
    "J02AC03": "voriconazole",
    "J02AC04": "posaconazole",
    "J01FA09": "clarithromycin",
    "J05AE03": "ritonavir",
    "V03AX03": "cobicistat",
    "J04AB02": "rifampicin",
    "N03AF01": "carbamazepine",
    "N03AB02": "phenytoin",
    "N03AA02": "phenobarbital",
    "N06AX25": "st john's wort",
    "L02BB04": "enzalutamide",
}
CYP3A4_RXNORM: Final = {
    "6135": "ketoconazole",
    "197853": "ketoconazole",  # ketoconazole 200 MG Oral Tablet
    "28031": "itraconazole",
    "282446": "posaconazole",
    "121243": "voriconazole",
    "21212": "clarithromycin",
    "85762": "ritonavir",
    "1306284": "cobicistat",
    "9384": "rifampicin",  # rifampin
    "2002": "carbamazepine",
    "8183": "phenytoin",
    "8134": "phenobarbital",
    "1307298": "enzalutamide",
    # St. John's wort extract: NDF-RT's ingredient (VUID 4024256) as mapped to RxNorm in public
    # drug-interaction tables, confirmed by an independent RxNorm audit of botanical ingredients.
    "258326": "st john's wort",
}
_CYP_NAMES: Final = (
    *((name, name) for name in STRONG_CYP3A4),
    ("rifampin", "rifampicin"),
    ("st. john's wort", "st john's wort"),
    ("st johns wort", "st john's wort"),
    ("saint john's wort", "st john's wort"),
    ("hypericum", "st john's wort"),
)
_TABLET_UNITS: Final = frozenset(
    {"tab", "tabs", "tablet", "tablets", "{tab}", "{tbl}", "{tablet}", "{tablets}"}
)
_TIMING_CODES: Final = {"QD": 1.0, "BID": 2.0, "TID": 3.0}
_PERIOD_DAYS: Final = {
    "s": 1 / 86400,
    "min": 1 / 1440,
    "h": 1 / 24,
    "d": 1.0,
    "wk": 7.0,
    "mo": 30.0,
    "a": 365.0,
}
_STOP_WORDS: Final = (
    (StopReason.TFR, ("treatment-free", "treatment free", "tfr")),
    (StopReason.INTOLERANCE, ("intoleran", "adverse", "side effect", "side-effect", "toxicit")),
    (StopReason.RESISTANCE, ("resistan", "failure", "progression", "progressive")),
    (StopReason.DOSE_CHANGE, ("dose change", "dose reduc", "dose escal", "dose increase")),
)
MAX_DAILY_DOSE_MG: Final = 2000.0
_STATUSES: Final = {status.value: status for status in MedicationStatus}


@dataclass(frozen=True, slots=True)
class Drug:
    """What a statement is about: a TKI, or a strong CYP3A4 modulator (``other``)."""

    tki: Tki | None
    other: str | None
    by_name: bool
    tablet_mg: float | None = None
    name_seen: str = ""


_BY_CODE: Final = {
    **{
        (c.RXNORM, code): Drug(tki, None, False, _TABLET_MG.get(code))
        for code, tki in TKI_RXNORM.items()
    },
    **{(c.RXNORM, code): Drug(None, name, False) for code, name in CYP3A4_RXNORM.items()},
    **{(c.ATC, code): Drug(tki, None, False) for code, tki in TKI_ATC.items()},
    **{(c.ATC, code): Drug(None, name, False) for code, name in CYP3A4_ATC.items()},
}


class MedicationIndex:
    """Medication resources of the input, by ``Medication/<id>`` and by fullUrl."""

    __slots__ = ("_by_key",)

    def __init__(self) -> None:
        self._by_key: dict[str, dict[str, Any]] = {}

    def add(self, entry: Entry) -> None:
        res = entry.resource
        rid = res.get("id")
        if (type(rid) is str and rid) or type(rid) is int:
            self._by_key[f"Medication/{rid}"] = res
        if entry.full_url:
            self._by_key[entry.full_url] = res

    def get(self, reference: str) -> dict[str, Any] | None:
        found = self._by_key.get(reference)
        if found is None and not reference.startswith("urn:"):
            parsed = literal(reference)
            if parsed is not None and parsed[0] == "Medication":
                found = self._by_key.get(f"Medication/{parsed[1]}")
        return found


def medication_reference(res: dict[str, Any]) -> str | None:
    """A bundled (not contained) Medication the statement refers to."""
    text = as_dict(res.get("medicationReference")).get("reference")
    return text if type(text) is str and text and text[0] != "#" else None


def identify(res: dict[str, Any], medications: MedicationIndex) -> tuple[Drug | None, str | None]:
    """The drug of a MedicationStatement, and a problem finding its Medication if there was one."""
    concepts, problem = _concepts(res, medications)
    for concept in concepts:
        for system, code in codings(concept):
            drug = _BY_CODE.get((system, code)) if type(system) is str else None
            if drug is not None:
                return drug, problem
    words = " | ".join(concept_words(concept) for concept in concepts)
    return (_by_name(words) if words else None), problem


@functools.lru_cache(maxsize=10_000)  # the same names recur
def _by_name(words: str) -> Drug | None:
    """The TKI or CYP3A4 modulator named in the words."""
    for name, tki in _TKI_NAMES:
        if name in words:
            return Drug(tki, None, True, None, name)
    for name, other in _CYP_NAMES:
        if name in words:
            return Drug(None, other, True, None, name)
    return None


def _concepts(res: dict[str, Any], medications: MedicationIndex) -> tuple[list[Any], str | None]:
    concept = res.get("medicationCodeableConcept")
    if concept is not None:
        return [concept], None
    ref = as_dict(res.get("medicationReference"))
    text = ref.get("reference")
    display = as_str(ref.get("display"))
    fallback = [{"text": display}] if display else []
    if type(text) is not str or not text:
        if fallback:
            return fallback, None
        return [], "names no medication (medicationCodeableConcept or medicationReference)"
    medication: dict[str, Any] | None = None
    if text[0] == "#":
        for item in as_list(res.get("contained")):
            if type(item) is dict and item.get("id") == text[1:]:
                medication = item
                break
    else:
        medication = medications.get(text)
    if medication is None or medication.get("resourceType") != "Medication":
        return fallback, f"refers to {text[:80]}, which is not a Medication in the input"
    found = [medication.get("code")]
    for ingredient in as_list(medication.get("ingredient")):
        found.append(as_dict(ingredient).get("itemCodeableConcept"))
    return found + fallback, None


def map_statement(
    res: dict[str, Any], ref: str, ctx: MappingContext, medications: MedicationIndex
) -> TkiStatement | OtherMedication | None:
    drug, problem = identify(res, medications)
    if drug is None:
        if problem is not None:
            ctx.warn(IssueCode.UNKNOWN_CODE, f"MedicationStatement {problem}: left out.", ref)
        else:
            ctx.count_not_read("MedicationStatements for other drugs")
        return None
    label = drug.tki.value if drug.tki is not None else (drug.other or "medication")
    if problem is not None:
        ctx.info(IssueCode.INFERRED, f"{label} statement {problem}; read from its display.", ref)
    if drug.by_name:
        ctx.info(
            IssueCode.INFERRED,
            f"Medication identified as {label} by its name ({drug.name_seen!r}), not by an "
            "RxNorm or ATC code.",
            ref,
        )
    status_text = res.get("status")
    status = _STATUSES.get(status_text) if type(status_text) is str else None
    if status is None:
        ctx.warn(
            IssueCode.STATUS_IGNORED,
            f"{label} statement has status {quoted(status_text)}, which is not a "
            "MedicationStatement status: left out.",
            ref,
        )
        return None
    start, end = _period(res, ref, ctx, label)
    if drug.other is not None:
        return OtherMedication(ref, drug.other, status, STRONG_CYP3A4[drug.other], start, end)
    assert drug.tki is not None
    daily, per_day = daily_dose(res.get("dosage"), drug, ref, ctx, f"{label} statement")
    asserted_text = res.get("dateAsserted")
    asserted = (
        ctx.day(asserted_text, ref, f"{label} statement dateAsserted")
        if asserted_text is not None
        else None
    )
    reason, reason_text = stop_reason(res)
    return TkiStatement(
        ref, drug.tki, status, start, end, daily, per_day, reason, reason_text, asserted
    )


def _period(
    res: dict[str, Any], ref: str, ctx: MappingContext, label: str
) -> tuple[date | None, date | None]:
    """Start and end; dates after now are kept (a planned end), the course rules judge them."""
    text = res.get("effectiveDateTime")
    if text is not None:
        return ctx.day(text, ref, f"{label} statement effectiveDateTime", future_ok=True), None
    period = as_dict(res.get("effectivePeriod"))
    start_text, end_text = period.get("start"), period.get("end")
    start = (
        ctx.day(start_text, ref, f"{label} statement start", future_ok=True)
        if start_text is not None
        else None
    )
    end = (
        ctx.day(end_text, ref, f"{label} statement end", future_ok=True)
        if end_text is not None
        else None
    )
    if start is not None and end is not None and end < start:
        ctx.warn(
            IssueCode.OUT_OF_RANGE,
            f"{label} statement ends ({end.isoformat()}) before it starts "
            f"({start.isoformat()}): the end is left out.",
            ref,
        )
        end = None
    return start, end


def daily_dose(
    dosage: Any, drug: Drug, ref: str, ctx: MappingContext, label: str
) -> tuple[float | None, int | None]:
    """Daily dose in mg and doses per day from Dosage elements (``dosage``, ``dosageInstruction``)."""
    dosages = [d for d in as_list(dosage) if type(d) is dict]
    if not dosages:
        ctx.info(
            IssueCode.MISSING_VALUE,
            f"{label} has no dosage: the daily dose is unknown.",
            ref,
        )
        return None, None
    first_sequence = dosages[0].get("sequence")
    if len(dosages) > 1 and any(d.get("sequence") != first_sequence for d in dosages):
        ctx.warn(
            IssueCode.AMBIGUOUS,
            f"{label} has {len(dosages)} dosages in sequence (one after another): "
            "which applies when is not recorded, so the daily dose is left unknown. Record each "
            "dose as its own statement or order.",
            ref,
        )
        return None, None
    total_mg = 0.0
    total_per_day = 0.0
    for dosage in dosages:
        mg = _dose_mg(dosage, drug, ref, ctx, label)
        if mg is None:
            return None, None
        per_day = _per_day(dosage.get("timing"))
        if per_day is None:
            ctx.warn(
                IssueCode.MISSING_VALUE,
                f"{label} dose {mg:g} mg has no frequency (timing.repeat, or timing.code QD, BID "
                f"or TID){_dosage_text(dosage)}: the daily dose is unknown.",
                ref,
            )
            return None, None
        total_mg += mg * per_day
        total_per_day += per_day
    if not 0 < total_mg <= MAX_DAILY_DOSE_MG:
        ctx.warn(
            IssueCode.OUT_OF_RANGE,
            f"{label} daily dose {total_mg:g} mg is outside 0-{MAX_DAILY_DOSE_MG:g} mg: left out.",
            ref,
        )
        return None, None
    rounded = round(total_per_day)
    per_day_int = rounded if rounded >= 1 and abs(total_per_day - rounded) < 1e-6 else None
    return round(total_mg, 3), per_day_int


def _dose_mg(
    dosage: dict[str, Any], drug: Drug, ref: str, ctx: MappingContext, label: str
) -> float | None:
    dose: dict[str, Any] | None = None
    for item in as_list(dosage.get("doseAndRate")):
        found = as_dict(item).get("doseQuantity")
        if type(found) is dict:
            dose = found
            break
    if dose is None:
        ctx.info(
            IssueCode.MISSING_VALUE,
            f"{label} has no doseQuantity{_dosage_text(dosage)}: the daily dose is unknown.",
            ref,
        )
        return None
    value = number(dose.get("value"))
    if value is None:
        ctx.warn(IssueCode.MISSING_VALUE, f"{label} doseQuantity has no numeric value.", ref)
        return None
    if _is_tablet(dose.get("code")) or _is_tablet(dose.get("unit")):
        if drug.tablet_mg is None:
            ctx.warn(
                IssueCode.UNKNOWN_UNIT,
                f"{label} dose is {value:g} tablet(s), but the medication code does not give the "
                "tablet strength: the daily dose is unknown. Code the product (e.g. RxNorm "
                "403879) or give the dose in mg.",
                ref,
            )
            return None
        return value * drug.tablet_mg
    quantity = units.quantity(dose)
    unit = quantity[1] if quantity else None
    factor = units.factor(unit, "mg")
    if factor is None:
        ctx.warn(
            IssueCode.UNKNOWN_UNIT,
            f"{label} dose unit {quoted(unit)} is not a mass (mg) or a tablet count: the daily "
            "dose is unknown.",
            ref,
        )
        return None
    return value * factor


def _is_tablet(unit: Any) -> bool:
    return type(unit) is str and unit.lower() in _TABLET_UNITS


def _per_day(timing: Any) -> float | None:
    t = as_dict(timing)
    repeat = as_dict(t.get("repeat"))
    if repeat:
        frequency = number(repeat.get("frequency"))
        period = number(repeat.get("period"))
        unit = repeat.get("periodUnit")
        days = _PERIOD_DAYS.get(unit) if type(unit) is str else None
        if period is not None and period > 0 and days is not None:
            if frequency is None:
                frequency = 1.0
            if frequency > 0:
                return frequency / (period * days)
            return None
        if period is None:
            times = len(as_list(repeat.get("timeOfDay"))) or len(as_list(repeat.get("when")))
            if times:
                return float(times)
    for system, code in codings(t.get("code")):
        if system in (c.V3_TIMING, None):
            per_day = _TIMING_CODES.get(code)
            if per_day is not None:
                return per_day
    return None


def _dosage_text(dosage: dict[str, Any]) -> str:
    text = as_str(dosage.get("text"))
    return f" (dosage text: {text[:80]!r})" if text else ""


def stop_reason(res: dict[str, Any]) -> tuple[StopReason | None, str | None]:
    """Why a TKI was stopped or changed, from ``statusReason`` (a code, else words in the text)."""
    found = res.get("statusReason")
    reasons = [found] if type(found) is dict else as_list(found)  # 0..1 on a request
    if not reasons:
        return None, None
    text: str | None = None
    for concept in reasons:
        concept = as_dict(concept)
        text = text or as_str(concept.get("text"))
        for system, code in codings(concept):
            if system == c.CS_STOP_REASON:
                try:
                    return StopReason(code), text or code
                except ValueError:
                    continue
    words = " | ".join(concept_words(concept) for concept in reasons)
    if not words:
        return None, text
    if text is None:
        for concept in reasons:
            for coding in as_list(as_dict(concept).get("coding")):
                text = text or as_str(as_dict(coding).get("display"))
    for reason, keys in _STOP_WORDS:
        if any(key in words for key in keys):
            return reason, text
    return StopReason.OTHER, text
