"""What a rule is: a stable id, what it reads, where it is written, and what it can suggest.

The id appears in every basis, in the FHIR output and as the PlanDefinition name in profiles/.
``RULESET_VERSION`` changes whenever any rule's behaviour changes: it is part of the identifiers
of what is written back, so a new version yields new suggestions.
"""

from __future__ import annotations

from dataclasses import dataclass

from fhir_cml.domain.citations import Citation
from fhir_cml.domain.vocabulary import Recommendation

RULESET_VERSION = "2.0.0"


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    title: str
    citations: tuple[Citation, ...]
    where: str | None = None  # the table or section of the first citation the rule reads
    guideline: str | None = None  # eln2020 | eln2013 | eln2009 when the rule belongs to one
    leads_to: tuple[
        Recommendation, ...
    ] = ()  # the suggestions it can give (PlanDefinition actions)

    @property
    def version(self) -> str:
        return RULESET_VERSION


RULES: dict[str, Rule] = {}


def rule(
    rule_id: str,
    title: str,
    citations: tuple[Citation, ...],
    where: str | None = None,
    guideline: str | None = None,
    leads_to: tuple[Recommendation, ...] = (),
) -> Rule:
    """A new rule, registered in :data:`RULES` (an id is defined once)."""
    if rule_id in RULES:
        raise ValueError(f"rule {rule_id} is defined twice")
    made = Rule(rule_id, title, citations, where, guideline, leads_to)
    RULES[rule_id] = made
    return made
