"""Which Observation and component codes fhir-cml reads (docs/inbound.md), as lookup tables.

External codes are the verified ones (LOINC, SNOMED CT); where no code exists the project's own
(``canonical.CS_CML``) stand in. Lookups go code first, then system, so one dict probe per coding
decides what an Observation is.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Final, TypeVar

from fhir_cml.domain.vocabulary import LabKind
from fhir_cml.fhir import canonical as c
from fhir_cml.fhir.inbound.context import as_list


class Kind(StrEnum):
    """What an Observation is about; also "the same code" for the duplicate and amend rules."""

    BCR_IS = "bcr-abl1-is"
    BCR_NOT_IS = "bcr-abl1-not-is"
    BCR_LOG = "bcr-abl1-log-reduction"
    BCR_E1A2 = "bcr-abl1-e1a2"
    TRANSCRIPT = "transcript-type"
    PH_METAPHASES = "ph-positive-metaphases"
    PH_CELLS = "t9-22-cells"
    WBC = "wbc"
    PLATELETS = "platelets"
    BASOPHILS = "basophils"
    BLASTS = "blasts"
    SPLEEN = "spleen"
    CHR = "hematologic-response"
    TROUGH = "imatinib-trough"
    MUTATION = "kinase-domain-mutation"
    ADHERENCE = "adherence"


BCR_ABL1_KINDS: Final = frozenset({Kind.BCR_IS, Kind.BCR_NOT_IS, Kind.BCR_LOG, Kind.BCR_E1A2})
# BCR::ABL1 results that count as evidence of CML: e1a2 (p190) alone is typical of Ph+ ALL.
CML_EVIDENCE_KINDS: Final = frozenset({Kind.BCR_IS, Kind.BCR_NOT_IS, Kind.BCR_LOG})
LAB_KINDS: Final = {
    Kind.WBC: LabKind.WBC,
    Kind.PLATELETS: LabKind.PLATELETS,
    Kind.BASOPHILS: LabKind.BASOPHILS,
    Kind.BLASTS: LabKind.BLASTS,
    Kind.SPLEEN: LabKind.SPLEEN,
}


_K = TypeVar("_K", bound=StrEnum)


def _table(rows: dict[tuple[str, str], _K]) -> dict[str, dict[str, _K]]:
    out: dict[str, dict[str, _K]] = {}
    for (system, code), kind in rows.items():
        out.setdefault(code, {})[system] = kind
    return out


OBSERVATION_CODES: Final = _table(
    {
        (c.LOINC, "69380-4"): Kind.BCR_IS,
        (c.LOINC, "55147-3"): Kind.BCR_NOT_IS,
        (c.LOINC, "46434-7"): Kind.BCR_NOT_IS,
        (c.LOINC, "50195-7"): Kind.BCR_LOG,
        (c.LOINC, "82905-1"): Kind.BCR_LOG,
        (c.LOINC, "52132-8"): Kind.BCR_E1A2,
        (c.CS_CML, c.TRANSCRIPT_TYPE): Kind.TRANSCRIPT,
        (c.CS_CML, c.PH_POSITIVE_METAPHASES): Kind.PH_METAPHASES,
        (c.LOINC, "21795-0"): Kind.PH_CELLS,
        (c.LOINC, "6690-2"): Kind.WBC,
        (c.LOINC, "777-3"): Kind.PLATELETS,
        (c.LOINC, "706-2"): Kind.BASOPHILS,
        (c.LOINC, "707-0"): Kind.BASOPHILS,
        (c.LOINC, "30180-4"): Kind.BASOPHILS,
        (c.LOINC, "709-6"): Kind.BLASTS,
        (c.LOINC, "26446-5"): Kind.BLASTS,
        (c.LOINC, "32489-7"): Kind.SPLEEN,
        (c.CS_CML, c.HEMATOLOGIC_RESPONSE): Kind.CHR,
        (c.LOINC, "103609-4"): Kind.TROUGH,
        (c.LOINC, "57844-3"): Kind.TROUGH,
        (c.LOINC, "69548-6"): Kind.MUTATION,
        (c.LOINC, "71799-1"): Kind.ADHERENCE,
    }
)


class Part(StrEnum):
    """Observation.component codes fhir-cml reads."""

    ABL1_COPIES = "abl1-copies"
    GUSB_COPIES = "gusb-copies"
    CONVERSION_FACTOR = "conversion-factor"
    TRANSCRIPT = "transcript-type"
    METAPHASES = "metaphases-counted"
    HIGH_RISK_ACA = "high-risk-aca"
    CLONAL_PH_POSITIVE = "clonal-abnormality-ph-positive"
    HOURS_SINCE_DOSE = "time-since-last-dose"
    PROTEIN_CHANGE = "p-hgvs"
    DNA_CHANGE = "c-hgvs"
    GENE = "gene-studied"


COMPONENT_CODES: Final = _table(
    {
        (c.CS_CML, c.ABL1_COPIES): Part.ABL1_COPIES,
        (c.CS_CML, c.GUSB_COPIES): Part.GUSB_COPIES,
        (c.CS_CML, c.CONVERSION_FACTOR): Part.CONVERSION_FACTOR,
        (c.CS_CML, c.TRANSCRIPT_TYPE): Part.TRANSCRIPT,
        (c.CS_CML, c.METAPHASES_COUNTED): Part.METAPHASES,
        (c.CS_CML, c.HIGH_RISK_ACA): Part.HIGH_RISK_ACA,
        (c.CS_CML, c.CLONAL_ABNORMALITY_PH_POSITIVE): Part.CLONAL_PH_POSITIVE,
        (c.CS_CML, c.TIME_SINCE_DOSE): Part.HOURS_SINCE_DOSE,
        (c.LOINC, "45359-7"): Part.HOURS_SINCE_DOSE,
        (c.LOINC, "48005-3"): Part.PROTEIN_CHANGE,
        (c.LOINC, "48004-6"): Part.DNA_CHANGE,
        (c.LOINC, "48018-6"): Part.GENE,
    }
)


def kind_of(concept: Any) -> Kind | None:
    """The first coding of ``Observation.code`` fhir-cml reads decides."""
    if type(concept) is not dict:
        return None
    for coding in as_list(concept.get("coding")):
        if type(coding) is dict:
            code = coding.get("code")
            if type(code) is str:
                systems = OBSERVATION_CODES.get(code)
                if systems is not None:
                    system = coding.get("system")
                    if type(system) is str:
                        kind = systems.get(system)
                        if kind is not None:
                            return kind
    return None


def components(res: dict[str, Any]) -> dict[Part, dict[str, Any]]:
    """The components fhir-cml reads, by what they are (the first of each)."""
    found: dict[Part, dict[str, Any]] = {}
    for comp in as_list(res.get("component")):
        if type(comp) is not dict:
            continue
        concept = comp.get("code")
        if type(concept) is not dict:
            continue
        for coding in as_list(concept.get("coding")):
            if type(coding) is dict:
                code = coding.get("code")
                if type(code) is str:
                    systems = COMPONENT_CODES.get(code)
                    system = coding.get("system")
                    if systems is not None and type(system) is str:
                        part = systems.get(system)
                        if part is not None:
                            found.setdefault(part, comp)
                            break
    return found
