"""What every mapping module shares: safe reads of JSON shapes, dates, and the patient's issues.

Input is arbitrary JSON, so every read checks the type it gets (``type(x) is dict`` rather than
trusting the shape): a wrong type in one resource must become an issue, never an exception.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any, Final

from fhir_cml.domain.model import Issue, UnreadResult
from fhir_cml.domain.vocabulary import IssueCode, Severity
from fhir_cml.fhir import canonical as c
from fhir_cml.fhir.inbound.options import MappingOptions

_NO_DICT: Final[dict[str, Any]] = {}
_NO_LIST: Final[list[Any]] = []

SYSTEM_NAMES: Final = {
    c.LOINC: "LOINC",
    c.SNOMED: "SNOMED CT",
    c.RXNORM: "RxNorm",
    c.ATC: "ATC",
    c.CS_CML: "cml",
}


def as_dict(value: Any) -> dict[str, Any]:
    """The value if it is a JSON object, else an empty one (never to be written to)."""
    return value if type(value) is dict else _NO_DICT


def as_list(value: Any) -> list[Any]:
    return value if type(value) is list else _NO_LIST


def as_str(value: Any) -> str | None:
    return value if type(value) is str and value else None


def number(value: Any) -> float | None:
    """A finite JSON number; booleans, NaN and infinities are not numbers here."""
    kind = type(value)
    if kind is int:
        return float(value)
    if kind is float and math.isfinite(value):
        return float(value)
    return None


def codings(concept: Any) -> Iterator[tuple[Any, str]]:
    """(system, code) of each coding of a CodeableConcept that has a string code."""
    if type(concept) is not dict:
        return
    for coding in as_list(concept.get("coding")):
        if type(coding) is dict:
            code = coding.get("code")
            if type(code) is str:
                yield coding.get("system"), code


def has_code(concept: Any, system: str, code: str) -> bool:
    return any(s == system and k == code for s, k in codings(concept))


def concept_words(concept: Any) -> str:
    """A CodeableConcept's text and displays, lower case, for matching by name."""
    if type(concept) is not dict:
        return ""
    parts: list[str] = []
    text = concept.get("text")
    if type(text) is str:
        parts.append(text)
    for coding in as_list(concept.get("coding")):
        if type(coding) is dict:
            display = coding.get("display")
            if type(display) is str:
                parts.append(display)
    return " | ".join(parts).lower()


def concept_label(concept: Any) -> str:
    """How a code is named in a message: "LOINC 8867-4", or its text."""
    for system, code in codings(concept):
        name = SYSTEM_NAMES.get(system) if type(system) is str else None
        return f"{name or system or 'code'} {code}"[:120]
    text = as_dict(concept).get("text")
    return f'"{text[:80]}"' if type(text) is str and text else "no code"


def quoted(value: Any, limit: int = 60) -> str:
    text = value if type(value) is str else repr(value)
    return f"'{text[:limit]}'"


class MappingContext:
    """The options and the issues of one patient's mapping."""

    __slots__ = (
        "conversion_factor",
        "issues",
        "not_read",
        "now",
        "now_aware",
        "now_naive",
        "today",
        "unread",
    )

    def __init__(self, options: MappingOptions) -> None:
        now = options.now
        self.now = now
        self.today = now.date()
        self.conversion_factor = options.conversion_factor
        self.issues: list[Issue] = []
        # What was left out without an issue of its own, counted for one summary issue.
        self.not_read: dict[str, int] = {}
        # BCR::ABL1 results that exist but could not be read (never "no test done").
        self.unread: list[UnreadResult] = []

    def issue(self, severity: Severity, code: IssueCode, message: str, ref: str | None) -> None:
        self.issues.append(Issue(severity, code, message, ref))

    def warn(self, code: IssueCode, message: str, ref: str | None) -> None:
        self.issues.append(Issue(Severity.WARNING, code, message, ref))

    def info(self, code: IssueCode, message: str, ref: str | None) -> None:
        self.issues.append(Issue(Severity.INFORMATION, code, message, ref))

    def unread_result(self, ref: str, day: date | None) -> None:
        """Keeps a result that was done but not read, with the reason its last issue gave."""
        last = self.issues[-1] if self.issues else None
        reason = last.message if last is not None and last.resource == ref else "not readable"
        self.unread.append(UnreadResult(ref, day, reason.rstrip(".")[:200]))

    def count_not_read(self, label: str) -> None:
        self.not_read[label] = self.not_read.get(label, 0) + 1

    # --- dates ---------------------------------------------------------------------------------

    def day(self, value: Any, ref: str, what: str, *, future_ok: bool = False) -> date | None:
        """The calendar day of a FHIR date/dateTime/instant, or None with an issue saying why.

        The day is the one written (the first 10 characters), not converted to another time
        zone: a result drawn late in the evening belongs to that day where it was drawn.
        """
        if type(value) is not str:
            self.warn(IssueCode.MISSING_DATE, f"{what} is not a date ({quoted(value)}).", ref)
            return None
        size = len(value)
        try:
            if size >= 10:
                day = date.fromisoformat(value[:10])
            elif size == 7:
                day = date.fromisoformat(value + "-01")
                self.info(
                    IssueCode.INFERRED,
                    f"{what} gives only the month ({value}): the 1st of the month is used.",
                    ref,
                )
            elif size == 4 and value.isdigit():
                self.warn(
                    IssueCode.MISSING_DATE,
                    f"{what} gives only the year ({value}): too imprecise to use; left out.",
                    ref,
                )
                return None
            else:
                raise ValueError(value)
        except ValueError:
            self.warn(
                IssueCode.MISSING_DATE,
                f"{what} {quoted(value)} is not a valid date: left out.",
                ref,
            )
            return None
        if not future_ok and day >= self.today and self._after_now(value, day):
            self.warn(
                IssueCode.FUTURE_DATE,
                f"{what} is {value[:40]}, after the moment of reading "
                f"({self.now.isoformat(timespec='minutes')}): left out; check the date.",
                ref,
            )
            return None
        return day

    def _after_now(self, text: str, day: date) -> bool:
        if day > self.today:
            return True
        if len(text) <= 10:
            return False
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return False
        now = self.now
        if moment.tzinfo is None:  # compare like with like: local times without a zone
            return moment > (now if now.tzinfo is None else now.astimezone().replace(tzinfo=None))
        return moment > (now if now.tzinfo is not None else now.astimezone())

    def effective(self, res: dict[str, Any], ref: str, what: str) -> tuple[str, date] | None:
        """When an Observation was made: effectiveDateTime, effectivePeriod.start, effectiveInstant."""
        text = res.get("effectiveDateTime")
        if text is None:
            text = as_dict(res.get("effectivePeriod")).get("start")
            if text is None:
                text = res.get("effectiveInstant")
        if text is None:
            self.warn(
                IssueCode.MISSING_DATE,
                f"{what} has no date (effectiveDateTime, effectivePeriod.start or "
                "effectiveInstant): left out.",
                ref,
            )
            return None
        if type(text) is str and len(text) >= 10:
            try:
                day = date.fromisoformat(text[:10])
            except ValueError:
                pass
            else:
                if day < self.today:  # the common case, without the checks below
                    return text, day
        found = self.day(text, ref, f"{what} date")
        if found is None:
            return None
        return text, found
