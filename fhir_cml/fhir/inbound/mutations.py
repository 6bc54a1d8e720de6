"""BCR::ABL1 kinase-domain mutation analyses (HL7 Genomics Reporting variant shape).

The protein change is written the way clinicians and the rules name it, one-letter
("p.Thr315Ile" becomes "T315I"); a change that is not a simple substitution keeps its HGVS text.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any, Final

from fhir_cml.domain.model import MutationResult
from fhir_cml.domain.vocabulary import IssueCode
from fhir_cml.fhir import canonical as c
from fhir_cml.fhir.inbound.bcr_abl1 import DETECTED, NOT_DETECTED, not_detected_words
from fhir_cml.fhir.inbound.codes import Part, components
from fhir_cml.fhir.inbound.context import (
    MappingContext,
    as_dict,
    as_str,
    codings,
    concept_label,
    concept_words,
    has_code,
)

PRESENT: Final = "LA9633-4"
ABSENT: Final = "LA9634-2"
ABL1_HGNC: Final = "HGNC:76"
AMINO_ACIDS: Final = {
    "Ala": "A",
    "Arg": "R",
    "Asn": "N",
    "Asp": "D",
    "Cys": "C",
    "Gln": "Q",
    "Glu": "E",
    "Gly": "G",
    "His": "H",
    "Ile": "I",
    "Leu": "L",
    "Lys": "K",
    "Met": "M",
    "Phe": "F",
    "Pro": "P",
    "Ser": "S",
    "Thr": "T",
    "Trp": "W",
    "Tyr": "Y",
    "Val": "V",
    "Sec": "U",
    "Pyl": "O",
    "Ter": "*",
}
_THREE: Final = re.compile(r"([A-Z][a-z]{2})(\d{1,5})([A-Z][a-z]{2}|\*)")
_ONE: Final = re.compile(r"([ACDEFGHIKLMNPQRSTVWYUO])(\d{1,5})([ACDEFGHIKLMNPQRSTVWYUO*])")


def one_letter(hgvs: str) -> str | None:
    """ "NP_005148.2:p.Thr315Ile", "p.(Thr315Ile)", "p.T315I" or "T315I" -> "T315I"."""
    text = hgvs.rsplit(":", 1)[-1].strip()
    if text.startswith("p."):
        text = text[2:]
    if text.startswith("(") and text.endswith(")"):
        text = text[1:-1]
    match = _THREE.fullmatch(text)
    if match is not None:
        first = AMINO_ACIDS.get(match.group(1))
        last = AMINO_ACIDS.get(match.group(3), match.group(3))
        if first is None or last not in AMINO_ACIDS.values():
            return None
        return f"{first}{match.group(2)}{last}"
    match = _ONE.fullmatch(text)
    if match is not None:
        return text
    return None


def map_mutation(
    res: dict[str, Any], ref: str, day: date, ctx: MappingContext
) -> MutationResult | None:
    parts = components(res) if "component" in res else {}
    gene = parts.get(Part.GENE)
    if gene is not None and not _is_abl1(gene):
        ctx.count_not_read("variant results for genes other than ABL1")
        return None
    protein = _text(parts.get(Part.PROTEIN_CHANGE))
    hgvs = protein or _text(parts.get(Part.DNA_CHANGE))
    value = res.get("valueCodeableConcept")
    detected: bool | None = None
    if value is not None:
        words = concept_words(value)
        if has_code(value, c.LOINC, PRESENT) or has_code(value, c.SNOMED, DETECTED):
            detected = True
        elif has_code(value, c.LOINC, ABSENT) or has_code(value, c.SNOMED, NOT_DETECTED):
            detected = False
        else:
            named = _named_change(value)
            if named is not None:
                detected, protein, hgvs = True, named, hgvs or named
            elif not_detected_words(words) or "absent" in words or "negative" in words:
                detected = False
            elif "present" in words or "detected" in words or "positive" in words:
                detected = True
        if detected is None:
            ctx.warn(
                IssueCode.UNKNOWN_CODE,
                f"Mutation analysis value {concept_label(value)} is neither Present/Absent "
                f"(LOINC {PRESENT}/{ABSENT}) nor a protein change such as T315I: left out.",
                ref,
            )
            return None
    elif hgvs is not None:
        detected = True
        ctx.info(
            IssueCode.INFERRED,
            f"Variant {hgvs} has no Present/Absent value: read as present (a variant "
            "Observation reports a variant found).",
            ref,
        )
    else:
        ctx.warn(
            IssueCode.MISSING_VALUE,
            "Mutation analysis has neither a value nor an amino-acid change (component "
            "48005-3): left out.",
            ref,
        )
        return None
    mutation = one_letter(protein) if protein else None
    return MutationResult(ref, day, detected, mutation, hgvs)


def _is_abl1(comp: dict[str, Any]) -> bool:
    concept = comp.get("valueCodeableConcept")
    if any(code == ABL1_HGNC for _, code in codings(concept)):
        return True
    words = concept_words(concept) + " " + (as_str(comp.get("valueString")) or "").lower()
    return "abl1" in words or "abl" in words.split()


def _text(comp: dict[str, Any] | None) -> str | None:
    """The HGVS expression of a component: its code, its text, or a valueString."""
    if comp is None:
        return None
    concept = comp.get("valueCodeableConcept")
    for _, code in codings(concept):
        return code[:200]
    text = as_str(as_dict(concept).get("text")) or as_str(comp.get("valueString"))
    return text[:200] if text else None


def _named_change(value: Any) -> str | None:
    for _, code in codings(value):
        if one_letter(code):
            return code
    text = as_str(as_dict(value).get("text"))
    if text and one_letter(text):
        return text
    return None
