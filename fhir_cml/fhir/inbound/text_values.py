"""Numbers sent as text: ``valueString`` "0.05 %", "< 0.0032 %", "0,05 %" read as a Quantity.

Laboratories that report through an interface engine often put the whole printed result in
``valueString``. It is read when it is one number, with an optional comparator in front and an
optional unit after it, and nothing else. What could be read two ways is not read: "1,000" (a
thousands separator or a decimal comma), "1.000,5", two numbers ("0.1-0.5 %"), a number inside
a sentence. The caller reports why (``TextValue.problem``), never guesses.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from typing import Any, Final

_COMPARATORS: Final = {
    "<": "<",
    "<=": "<=",
    "=<": "<=",
    "≤": "<=",
    ">": ">",
    ">=": ">=",
    "=>": ">=",
    "≥": ">=",
}
# comparator? number unit?  (a unit starts with neither a digit nor a sign, except 10^9/L, 10*9/L)
_TEXT: Final = re.compile(
    r"""^\s*
    (?P<cmp><=|=<|>=|=>|<|>|≤|≥)?\s*
    (?P<num>[+-]?(?:\d+(?:[.,]\d+)*|[.,]\d+)(?:[eE][+-]?\d+)?)
    \s*(?P<unit>(?:10[\^*eE]|[^\d\s+\-.,<>=≤≥])[^<>=≤≥]*?)?\s*$""",
    re.VERBOSE,
)
_MAX_TEXT: Final = 80


@dataclass(frozen=True, slots=True)
class TextValue:
    """A number read from text (as a FHIR Quantity), or why it could not be read."""

    quantity: dict[str, Any] | None
    problem: str | None = None


def quantity_from_text(text: Any) -> TextValue:
    """The Quantity a result's text states, or the reason it is not one number."""
    if type(text) is not str:
        return TextValue(None, "is not text")  # pragma: no cover - callers pass JSON strings
    return _parse(text)


@functools.lru_cache(maxsize=10_000)  # a laboratory sends a few shapes many times
def _parse(text: str) -> TextValue:
    if len(text) > _MAX_TEXT:
        return TextValue(None, "is too long to be a single value")
    match = _TEXT.match(text)
    if match is None:
        return TextValue(None, "is not a single number with an optional comparator and unit")
    number = _number(match["num"])
    if isinstance(number, str):
        return TextValue(None, number)
    quantity: dict[str, Any] = {"value": number}
    comparator = match["cmp"]
    if comparator:
        quantity["comparator"] = _COMPARATORS[comparator]
    unit = (match["unit"] or "").strip()
    if unit:
        quantity["unit"] = unit
    return TextValue(quantity)


def _number(text: str) -> float | str:
    """The number, or the reason it is ambiguous. One separator kind only; a comma is decimal."""
    body = text.lstrip("+-")
    mantissa = re.split(r"[eE]", body)[0]
    has_dot, has_comma = "." in mantissa, "," in mantissa
    if has_dot and has_comma:
        return "mixes '.' and ',' (which one is the decimal mark is not certain)"
    separator = "," if has_comma else "."
    parts = mantissa.split(separator)
    if len(parts) > 2:
        return f"has more than one '{separator}' (a thousands separator is not read)"
    if has_comma:
        whole, fraction = parts
        if len(fraction) == 3 and whole not in ("", "0") and not whole.startswith("0"):
            return (
                f"has '{mantissa}', which could be a decimal comma or a thousands separator "
                "(write it with a decimal point)"
            )
        text = text.replace(",", ".")
    try:
        value = float(text)
    except ValueError:
        return "is not a number"
    if not math.isfinite(value):
        return "is not a finite number"
    return value


def observed_quantity(holder: dict[str, Any]) -> tuple[Any, str | None]:
    """``valueQuantity``, else the Quantity ``valueString`` states; with why the text is not one.

    Returns (quantity or None, problem or None); both None when neither value is present.
    """
    found = holder.get("valueQuantity")
    if found is not None:
        return found, None
    text = holder.get("valueString")
    if text is None:
        return None, None
    parsed = quantity_from_text(text)
    if parsed.quantity is None:
        shown = text[:60] if type(text) is str else repr(text)[:60]
        return None, f"the text '{shown}', which {parsed.problem}"
    return parsed.quantity, None
