"""Small shared helpers for the rules: time on therapy and how numbers are written."""

from __future__ import annotations

from datetime import date, timedelta

DAYS_PER_MONTH = 30.4375


def months_between(start: date, end: date) -> float:
    return (end - start).days / DAYS_PER_MONTH


def add_months(start: date, months: float) -> date:
    return start + timedelta(days=round(months * DAYS_PER_MONTH))


def age_on(birth: date | None, on: date) -> int | None:
    """Whole years of age on a day, or None when the birth date is not known."""
    if birth is None:
        return None
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def pct(value: float) -> str:
    """An IS percentage as a clinician writes it: 12 %, 0.8 %, 0.0032 %."""
    return f"{value:.4g} %"


def months_text(months: float) -> str:
    return f"{months:.1f} months"


def copies(value: int) -> str:
    return f"{value:,}"
