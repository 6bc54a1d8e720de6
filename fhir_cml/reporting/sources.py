"""Citations as a clinician looks them up: authors, title, journal, year, DOI and PMID.

An identifier that was not confirmed is left out and the citation says what is missing ("not
confirmed: PMID"), rather than inventing one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fhir_cml.domain.citations import Citation
from fhir_cml.domain.rule import Rule
from fhir_cml.reporting.memo import ByIdentity

PROJECT_CONVENTION = "Project convention (no published source)"

T = TypeVar("T")


def citation_text(c: Citation) -> str:
    """Vancouver style: "Hochhaus A, ... et al. Title. Leukemia. 2020;34:966-984. doi:... PMID: ..."."""
    parts = [c.authors.rstrip("."), c.title.rstrip(".")]
    where = ""
    if c.journal:
        where = c.journal
        if c.year:
            where += f". {c.year}"
            if c.volume:
                where += f";{c.volume}"
    elif c.year:
        where = str(c.year)
    if where:
        parts.append(where)
    if c.doi:
        parts.append(f"doi:{c.doi}")
    if c.pmid:
        parts.append(f"PMID: {c.pmid}")
    text = ". ".join(parts) + "."
    if c.unconfirmed:
        text += f" ({c.unconfirmed})"
    return text


def once_per_rule(make: Callable[[Rule], T]) -> ByIdentity[Rule, T]:
    """``make(rule)`` worked out once for each rule: rules are constants, and every basis of
    every patient names one."""
    return ByIdentity(make)


@once_per_rule
def source_text(rule: Rule) -> str:
    """Every citation of a rule, the first with the table or section it reads."""
    if not rule.citations:
        return PROJECT_CONVENTION
    texts = [citation_text(c) for c in rule.citations]
    if rule.where:
        texts[0] += f" [{rule.where}]"
    return " ".join(texts)


def citation_item(c: Citation) -> dict[str, Any]:
    """A citation in the JSON contract."""
    return {
        "key": c.key,
        "authors": c.authors,
        "title": c.title,
        "journal": c.journal,
        "year": c.year,
        "volume": c.volume,
        "doi": c.doi,
        "pmid": c.pmid,
        "not_confirmed": c.unconfirmed,
    }
