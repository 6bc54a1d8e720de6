"""Small FHIR elements every outbound resource shares: codings, dates, the basis extension."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any

from fhir_cml.domain.basis import Basis, Params
from fhir_cml.domain.results import Assessment
from fhir_cml.fhir.canonical import CS_GUIDELINE, EXT_AS_OF, EXT_BASIS, plan_definition
from fhir_cml.fhir.outbound.identifiers import input_reference, resource_type
from fhir_cml.reporting import say
from fhir_cml.reporting import source_text as rule_source


def coding(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"system": system, "code": code}
    if display:
        out["display"] = display
    return out


def concept(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    return {"coding": [coding(system, code, display)]}


def guideline_coding(assessment: Assessment) -> dict[str, Any]:
    return coding(CS_GUIDELINE, assessment.guideline.value, assessment.guideline.label)


def day(value: date) -> str:
    return value.isoformat()


def as_of_extension(assessment: Assessment) -> dict[str, Any]:
    """The date the reading reads the record as of (never the moment of writing)."""
    return {"url": EXT_AS_OF, "valueDate": day(assessment.as_of)}


def basis_extension(basis: Basis) -> dict[str, Any]:
    """The ``basis`` extension: the rule's PlanDefinition, the sentence, the evidence used."""
    parts: list[dict[str, Any]] = [
        {"url": "rule", "valueCanonical": plan_definition(basis.rule.id)},
        {"url": "statement", "valueString": say(basis)},
    ]
    parts.extend(
        {"url": "evidence", "valueReference": input_reference(ref)}
        for ref in dict.fromkeys(basis.evidence)
    )
    return {"url": EXT_BASIS, "extension": parts}


def reasons(bases: Sequence[Basis], allowed: Iterable[str]) -> dict[str, Any]:
    """``reasonCode`` (the basis sentences) and ``reasonReference`` (the evidence of the types
    the element may point at, by the type its reference names), those there are."""
    out: dict[str, Any] = {}
    if bases:
        out["reasonCode"] = [{"text": say(b)} for b in bases]
    types = frozenset(allowed)
    refs = [
        ref
        for ref in dict.fromkeys(ref for b in bases for ref in b.evidence)
        if resource_type(ref) in types
    ]
    if refs:
        out["reasonReference"] = [input_reference(ref) for ref in refs]
    return out


def unique(bases: Iterable[Basis | None]) -> list[Basis]:
    """Bases without repeats (the same rule, finding and evidence named twice counts once)."""
    seen: dict[tuple[str, str, Params, tuple[str, ...]], Basis] = {}
    for basis in bases:
        if basis is not None:
            seen.setdefault((basis.rule.id, basis.finding, basis.params, basis.evidence), basis)
    return list(seen.values())


def all_bases(assessment: Assessment) -> list[Basis]:
    """Every basis behind the reading (not the suggestions), in reading order."""
    a = assessment
    return unique(
        [
            a.molecular_response.basis,
            *a.eln.reasons,
            a.loss_of_mmr.basis if a.loss_of_mmr.lost else None,
            *a.tfr.reasons,
            a.tdm.basis,
            *(score.basis for score in a.risk_scores),
            *(interaction.basis for interaction in a.interactions),
            a.monitoring.basis,
        ]
    )


def source_text(basis: Basis) -> str:
    """The sentence followed by the rule and its published source."""
    return f"{say(basis)} [{basis.rule.id}: {rule_source(basis.rule)}]"
