"""Displays of external codes, each as its owner publishes it and with where it was seen.

fhir-cml writes a ``display`` for an external code (LOINC, SNOMED CT, RxNorm, ATC, HGNC) only
when it is here: a wrong display is worse than none, because a receiver may show it instead of
its own. The HL7 code systems' displays are read from the FHIR R4 definitions and the project's
own from its CodeSystems, not listed here. ``tests/unit/test_displays.py`` checks every display
the project writes (examples, conformance resources, what the builders write) against these
sources.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from fhir_cml.fhir.canonical import (
    HGNC,
    HGVS,
    LOINC,
    M49,
    RKKP_MOLECULAR_REMISSION,
    RKKP_TREATMENT_RESPONSE,
    RXNORM,
    SNOMED,
)


@dataclass(frozen=True, slots=True)
class Confirmed:
    display: str
    source: str  # where the display was seen


# Sources cited more than once.
_HEALTHASSURE: Final = "https://www.healthassure.in/codes/loinc-{}"  # LOINC's long common names
_GENOMICS: Final = (
    "https://hl7.org/fhir/uv/genomics-reporting/2024Jan/Observation-EGFR-L858R-var.html"
)
_MCODE_TREND: Final = (
    "https://hl7.org/fhir/us/mcode/ValueSet-mcode-condition-status-trend-vs.html (STU4)"
)
_NDC_GLEEVEC: Final = "https://ndclist.com/ndc/0078-0401/rxnorm"
_RXNAV: Final = (
    "checked against RxNav's ingredient concepts (https://mor.nlm.nih.gov/RxNav/), as the inbound "
    "mapper's drug tables record; page not recorded"
)
_CIBMTR: Final = (
    "https://github.com/nmdp-ig/cibmtr-reporting-ig/blob/main/input/fsh/terminology/medications/"
    "med-form2400-post-hct-disease-therapy-valueset.fsh (RxNorm names)"
)
_KIP: Final = "https://build.fhir.org/ig/KIP-infrastructure/implementation-guide/{}"
# Displays confirmed when the value sets were first written; the page each was seen on was not
# recorded then. Kept because the inbound mapper's value sets have carried them since.
_EARLIER: Final = "confirmed with the first value sets (page not recorded)"

CONFIRMED: Final[dict[tuple[str, str], Confirmed]] = {
    # --- LOINC: long common names --------------------------------------------------------------
    (LOINC, "69380-4"): Confirmed(
        "t(9;22)(q34.1;q11)(ABL1,BCR) b2a2+b3a2 fusion transcript/control transcript "
        "(International Scale) [# Ratio] in Blood or Tissue by Molecular genetics method",
        _EARLIER,
    ),
    (LOINC, "55147-3"): Confirmed(
        "t(9;22)(q34.1;q11)(ABL1,BCR) b2a2+b3a2 fusion transcript/control transcript [# Ratio] "
        "in Blood or Tissue by Molecular genetics method",
        _HEALTHASSURE.format(
            "55147-3-t922q341q11abl1bcr-b2a2b3a2-fusion-transcriptcontrol-transcript-molgen-"
            "bldtiss-ratio"
        ),
    ),
    (LOINC, "46434-7"): Confirmed(
        "t(9;22)(q34.1;q11)(ABL1,BCR) fusion transcript/control transcript [# Ratio] in Blood "
        "or Tissue by Molecular genetics method",
        _HEALTHASSURE.format(
            "46434-7-t922q341q11abl1bcr-fusion-transcriptcontrol-transcript-molgen-bldtiss-ratio"
        ),
    ),
    (LOINC, "50195-7"): Confirmed(
        "t(9;22)(q34.1;q11)(ABL1,BCR) fusion transcript/control transcript [Log Number Ratio] "
        "in Blood or Tissue by Molecular genetics method",
        _EARLIER,
    ),
    (LOINC, "82905-1"): Confirmed(
        "t(9;22)(q34.1;q11)(ABL1,BCR) fusion transcript/control transcript [Log Number Ratio] "
        "in Bone marrow by Molecular genetics method",
        _EARLIER,
    ),
    (LOINC, "52132-8"): Confirmed(
        "t(9;22)(q34.1;q11)(ABL1,BCR) e1a2 fusion transcript/control transcript [# Ratio] in "
        "Blood or Tissue by Molecular genetics method",
        _EARLIER,
    ),
    (LOINC, "103609-4"): Confirmed(
        "Imatinib [Mass/volume] in Serum or Plasma by LC/MS/MS --24 hours post dose",
        _HEALTHASSURE.format("103609-4-imatinib-24-hr-post-dose-lcmsms-massvol"),
    ),
    (LOINC, "45359-7"): Confirmed(
        "Length of time post dose",
        _HEALTHASSURE.format("45359-7-length-of-time-post-dose"),
    ),
    (LOINC, "32489-7"): Confirmed(
        "Spleen tip distance below costal margin",
        _HEALTHASSURE.format("32489-7-spleen-tip-distance-below-costal-margin"),
    ),
    (LOINC, "71799-1"): Confirmed(
        "Adherence to prescribed medication instructions [Reported]",
        "https://loinc.org/71799-1",
    ),
    (LOINC, "777-3"): Confirmed(
        "Platelets [#/volume] in Blood by Automated count",
        "https://hl7.org/fhir/us/core/STU7/Observation-cbc-platelets.html",
    ),
    (LOINC, "69548-6"): Confirmed("Genetic variant assessment", _GENOMICS),
    (LOINC, "LA9633-4"): Confirmed("Present", _GENOMICS),
    (LOINC, "48004-6"): Confirmed("DNA change (c.HGVS)", _GENOMICS),
    (LOINC, "48005-3"): Confirmed("Amino acid change (pHGVS)", _GENOMICS),
    (LOINC, "48018-6"): Confirmed("Gene studied [ID]", _GENOMICS),
    (LOINC, "81258-6"): Confirmed(
        "Sample variant allelic frequency [NFr]",
        "https://www.hl7.org/fhir/uv/genomics-reporting/Observation-EGFR-L858R-var.html",
    ),
    # --- SNOMED CT -----------------------------------------------------------------------------
    (SNOMED, "260415000"): Confirmed("Not detected", _EARLIER),
    (SNOMED, "260373001"): Confirmed("Detected", _EARLIER),
    (SNOMED, "92818009"): Confirmed("Chronic myeloid leukemia (disorder)", _EARLIER),
    (SNOMED, "278177007"): Confirmed("Chronic phase (qualifier value)", _EARLIER),
    (SNOMED, "278179005"): Confirmed("Accelerated phase (qualifier value)", _EARLIER),
    (SNOMED, "255251009"): Confirmed("Acute phase (qualifier value)", _EARLIER),
    (SNOMED, "26643006"): Confirmed(
        "Oral route", "https://hl7.org/fhir/R5/valueset-route-codes.html"
    ),
    (SNOMED, "1156699004"): Confirmed(
        "Complies with drug therapy (finding)",
        "https://hl7.org/cda/us/ccda/Binary-medication-adherence-example.html",
    ),
    (SNOMED, "268910001"): Confirmed("Patient's condition improved (finding)", _MCODE_TREND),
    (SNOMED, "359746009"): Confirmed("Patient's condition stable (finding)", _MCODE_TREND),
    (SNOMED, "271299001"): Confirmed("Patient's condition worsened (finding)", _MCODE_TREND),
    (SNOMED, "709137006"): Confirmed("Patient condition undetermined (finding)", _MCODE_TREND),
    # --- RxNorm --------------------------------------------------------------------------------
    (RXNORM, "282388"): Confirmed("imatinib", _RXNAV),
    (RXNORM, "475342"): Confirmed("dasatinib", _RXNAV),
    (RXNORM, "1307619"): Confirmed("bosutinib", _RXNAV),
    (RXNORM, "1364347"): Confirmed("ponatinib", _RXNAV),
    (RXNORM, "2584304"): Confirmed("asciminib", _RXNAV),
    (RXNORM, "6135"): Confirmed("ketoconazole", _RXNAV),
    (RXNORM, "21212"): Confirmed("clarithromycin", _RXNAV),
    (RXNORM, "85762"): Confirmed("ritonavir", _RXNAV),
    (RXNORM, "1306284"): Confirmed("cobicistat", _RXNAV),
    (RXNORM, "9384"): Confirmed("rifampin", _RXNAV),
    (RXNORM, "8134"): Confirmed("phenobarbital", _RXNAV),
    (RXNORM, "1307298"): Confirmed("enzalutamide", _RXNAV),
    (RXNORM, "403878"): Confirmed("imatinib 100 MG Oral Tablet", _NDC_GLEEVEC),
    (RXNORM, "403879"): Confirmed("imatinib 400 MG Oral Tablet", _NDC_GLEEVEC),
    (RXNORM, "404588"): Confirmed("imatinib 100 MG Oral Tablet [Gleevec]", _CIBMTR),
    (RXNORM, "404589"): Confirmed("imatinib 400 MG Oral Tablet [Gleevec]", _CIBMTR),
    **{
        (RXNORM, code): Confirmed(name, _CIBMTR)
        for code, name in {
            "643105": "dasatinib 20 MG Oral Tablet",
            "643107": "dasatinib 50 MG Oral Tablet",
            "643109": "dasatinib 70 MG Oral Tablet",
            "1045406": "dasatinib 80 MG Oral Tablet",
            "799047": "dasatinib 100 MG Oral Tablet",
            "1045402": "dasatinib 140 MG Oral Tablet",
            "643173": "dasatinib 20 MG Oral Tablet [Sprycel]",
            "643175": "dasatinib 50 MG Oral Tablet [Sprycel]",
            "643177": "dasatinib 70 MG Oral Tablet [Sprycel]",
            "1045408": "dasatinib 80 MG Oral Tablet [Sprycel]",
            "799830": "dasatinib 100 MG Oral Tablet [Sprycel]",
            "1045404": "dasatinib 140 MG Oral Tablet [Sprycel]",
            "1307624": "bosutinib 100 MG Oral Tablet",
            "1987732": "bosutinib 400 MG Oral Tablet",
            "1307633": "bosutinib 500 MG Oral Tablet",
            "1307630": "bosutinib 100 MG Oral Tablet [Bosulif]",
            "1987734": "bosutinib 400 MG Oral Tablet [Bosulif]",
            "1307635": "bosutinib 500 MG Oral Tablet [Bosulif]",
        }.items()
    },
    (RXNORM, "258326"): Confirmed(
        "St. John's wort extract",
        "public RxNorm lists naming 258326 so (a drug-interaction table; an antidepressant "
        "ingredient list); page not recorded",
    ),
    (RXNORM, "662281"): Confirmed("nilotinib", _RXNAV),
    (RXNORM, "197853"): Confirmed("ketoconazole 200 MG Oral Tablet", _EARLIER),
    (RXNORM, "28031"): Confirmed("itraconazole", _EARLIER),
    (RXNORM, "282446"): Confirmed("posaconazole", _EARLIER),
    (RXNORM, "121243"): Confirmed("voriconazole", _EARLIER),
    (RXNORM, "2002"): Confirmed("carbamazepine", _EARLIER),
    (RXNORM, "8183"): Confirmed("phenytoin", _EARLIER),
    # --- The Danish registries' KIP guide (displays in Danish, as the value set gives them) -----
    (RKKP_TREATMENT_RESPONSE, "complete_hematological_response"): Confirmed(
        "Komplet hæmatologisk respons (CHR)", _KIP.format("ValueSet-BehandlingsresponsCML.html")
    ),
    (RKKP_TREATMENT_RESPONSE, "complete_cytogenetic_response"): Confirmed(
        "Komplet cytogenetisk Respons (CCyR)", _KIP.format("ValueSet-BehandlingsresponsCML.html")
    ),
    (RKKP_TREATMENT_RESPONSE, "partial_cytogenetic_response"): Confirmed(
        "Partiel cytogenetisk Respons (PCyR)", _KIP.format("ValueSet-BehandlingsresponsCML.html")
    ),
    (RKKP_TREATMENT_RESPONSE, "major_molecular_response"): Confirmed(
        "Major molekylært Respons (MMR)", _KIP.format("ValueSet-BehandlingsresponsCML.html")
    ),
    (RKKP_MOLECULAR_REMISSION, "mr_4"): Confirmed(
        "MR4", _KIP.format("CodeSystem-MolecularRemission.html")
    ),
    (RKKP_MOLECULAR_REMISSION, "mr_4.5"): Confirmed(
        "MR4.5", _KIP.format("CodeSystem-MolecularRemission.html")
    ),
    (RKKP_MOLECULAR_REMISSION, "mr_5"): Confirmed(
        "MR5", _KIP.format("CodeSystem-MolecularRemission.html")
    ),
    # --- UN M49 (jurisdiction) -----------------------------------------------------------------
    (M49, "001"): Confirmed(
        "World", "https://build.fhir.org/codesystem-restful-security-service.canonical.json"
    ),
    # --- HGNC ----------------------------------------------------------------------------------
    (HGNC, "HGNC:76"): Confirmed(
        "ABL1", "https://gist.github.com/MarkDunne/92f63bf622eb2d950d8511e632347cce (HGNC 76)"
    ),
}
# Code systems whose codes are their own displays (an HGVS expression is shown as written).
SELF_DESCRIBING: Final = frozenset({HGVS})
# ATC displays are the substance names of the WHO ATC index, which the inbound mapper's drug
# tables (fhir_cml.fhir.inbound.medications) use as the drugs' names; where the engine's name is
# not the index's, no display is written.
ATC_NOT_INDEX_NAMES: Final = frozenset({"N06AX25"})  # St John's wort: the index names the herb


def atc_display(code: str, name: str) -> str | None:
    """The display of an ATC code whose drug the engine calls ``name``."""
    return None if code in ATC_NOT_INDEX_NAMES else name


def display(system: str, code: str) -> str:
    """The confirmed display; KeyError when there is none (then write no display)."""
    if system in SELF_DESCRIBING:
        return code
    return CONFIRMED[(system, code)].display


def has_display(system: str, code: str) -> bool:
    return system in SELF_DESCRIBING or (system, code) in CONFIRMED
