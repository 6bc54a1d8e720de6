"""The primary literature the rules rest on, as a clinician would look it up.

Each entry gives authors, title, journal, year, volume and pages, and the DOI and PMID where they
were confirmed on a public page for that exact article; an identifier that was not confirmed is
None and ``unconfirmed`` says what is missing, so the output says "not confirmed" rather than
inventing one. The rules cite these, never a summary document.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Citation:
    key: str  # a stable short name: ELN2020, CROSS2015, ...
    authors: str
    title: str
    journal: str | None
    year: int | None
    volume: str | None = None  # "34:966-984", "122(6):872-884"
    doi: str | None = None
    pmid: str | None = None
    unconfirmed: str | None = None  # what could not be confirmed (identifiers, pages, authors)


ELN2020 = Citation(
    "ELN2020",
    "Hochhaus A, Baccarani M, Silver RT, et al.",
    "European LeukemiaNet 2020 recommendations for treating chronic myeloid leukemia",
    "Leukemia",
    2020,
    "34:966-984",
    doi="10.1038/s41375-020-0776-2",
    pmid="32127639",
)
ELN2013 = Citation(
    "ELN2013",
    "Baccarani M, Deininger MW, Rosti G, et al.",
    "European LeukemiaNet recommendations for the management of chronic myeloid leukemia: 2013",
    "Blood",
    2013,
    "122(6):872-884",
    doi="10.1182/blood-2013-05-501569",
    unconfirmed="PMID not confirmed",
)
ELN2009 = Citation(
    "ELN2009",
    "Baccarani M, Cortes J, Pane F, et al.",
    "Chronic myeloid leukemia: an update of concepts and management recommendations of European "
    "LeukemiaNet",
    "J Clin Oncol",
    2009,
    "27(35):6041-6051",
    unconfirmed="DOI and PMID not confirmed",
)
CROSS2015 = Citation(
    "CROSS2015",
    "Cross NCP, White HE, Colomer D, et al.",
    "Laboratory recommendations for scoring deep molecular responses following treatment for "
    "chronic myeloid leukemia",
    "Leukemia",
    2015,
    "29(5):999-1003",
    doi="10.1038/leu.2015.29",
    pmid="25652737",
)
SOKAL1984 = Citation(
    "SOKAL1984",
    "Sokal JE, Cox EB, Baccarani M, et al.",
    'Prognostic discrimination in "good-risk" chronic granulocytic leukemia',
    "Blood",
    1984,
    "63(4):789-799",
    pmid="6584184",
    unconfirmed="DOI not confirmed",
)
EUTOS2011 = Citation(
    "EUTOS2011",
    "Hasford J, et al.",
    "Predicting complete cytogenetic response and subsequent progression-free survival in 2060 "
    "patients with CML on imatinib treatment: the EUTOS score",
    "Blood",
    2011,
    "118(3):686-689",
    unconfirmed="co-authors, end page, DOI and PMID not confirmed",
)
ELTS2016 = Citation(
    "ELTS2016",
    "Pfirrmann M, et al.",
    "Prognosis of long-term survival considering disease-specific death in patients with chronic "
    "myeloid leukemia",
    "Leukemia",
    2016,
    "30(1):48-56",
    doi="10.1038/leu.2015.261",
    pmid="26416462",
    unconfirmed="author list not confirmed",
)
IRIS2006 = Citation(
    "IRIS5Y",
    "Druker BJ, Guilhot F, O'Brien SG, et al.",
    "Five-year follow-up of patients receiving imatinib for chronic myeloid leukemia",
    "N Engl J Med",
    2006,
    "355(23):2408-2417",
    doi="10.1056/NEJMoa062867",
    pmid="17151364",
)
IRIS_ESCALATION2009 = Citation(
    "IRIS-DOSEESC2009",
    "IRIS investigators",
    "Imatinib dose escalation in the IRIS study (analysis using the IRIS protocol and the ELN "
    "criteria)",
    "Cancer",
    2009,
    "115(3):551-560",
    doi="10.1002/cncr.24066",
    unconfirmed="title, authors and PMID not confirmed (PMCID PMC4445370)",
)
PICARD2007 = Citation(
    "PICARD2007",
    "Picard S, et al.",
    "Trough imatinib plasma levels are associated with both cytogenetic and molecular responses "
    "to standard-dose imatinib in chronic myeloid leukemia",
    "Blood",
    2007,
    unconfirmed="citation not confirmed: volume, pages, DOI and PMID not found",
)
STIM2010 = Citation(
    "STIM2010",
    "Mahon FX, Réa D, Guilhot J, et al.",
    "Discontinuation of imatinib in patients with chronic myeloid leukaemia who have maintained "
    "complete molecular remission for at least 2 years: the prospective, multicentre Stop "
    "Imatinib (STIM) trial",
    "Lancet Oncol",
    2010,
    "11:1029-1035",
    unconfirmed="DOI and PMID not confirmed",
)
STOP2G2017 = Citation(
    "STOP2G2017",
    "Rea D, et al.",
    "Discontinuation of dasatinib or nilotinib in chronic myeloid leukemia: interim analysis of "
    "the STOP 2G-TKI study",
    "Blood",
    2017,
    "129(7):846-854",
    doi="10.1182/blood-2016-09-742205",
    pmid="27932374",
    unconfirmed="author list not confirmed",
)
DESTINY2017 = Citation(
    "DESTINY2017",
    "Clark RE, Polydoros F, Apperley JF, et al.",
    "De-escalation of tyrosine kinase inhibitor dose in patients with chronic myeloid leukaemia "
    "with stable major molecular response (DESTINY): an interim analysis of a non-randomised, "
    "phase 2 trial",
    "Lancet Haematol",
    2017,
    "4(7):e310-e316",
    unconfirmed="DOI and PMID not confirmed",
)
SOVERINI2019 = Citation(
    "SOVERINI2019",
    "Soverini S, Abruzzese E, Bocchia M, et al.",
    "Next-generation sequencing for BCR-ABL1 kinase domain mutation testing in patients with "
    "chronic myeloid leukemia: a position paper",
    "J Hematol Oncol",
    2019,
    "12:131",
    doi="10.1186/s13045-019-0815-5",
    pmid="31801582",
)
ASCIMINIB2019 = Citation(
    "ASCIMINIB2019",
    "Hughes TP, Mauro MJ, Cortes JE, et al.",
    "Asciminib in chronic myeloid leukemia after ABL kinase inhibitor failure",
    "N Engl J Med",
    2019,
    "381(24):2315-2326",
    doi="10.1056/NEJMoa1902328",
    pmid="31826340",
)
PACE2013 = Citation(
    "PACE2013",
    "Cortes JE, Kim DW, Pinilla-Ibarz J, et al.",
    "A phase 2 trial of ponatinib in Philadelphia chromosome-positive leukemias",
    "N Engl J Med",
    2013,
    "369(19):1783-1796",
    doi="10.1056/NEJMoa1306494",
    unconfirmed="PMID not confirmed",
)
PAEDIATRIC2014 = Citation(
    "PAEDIATRIC-IBFM",
    "de la Fuente J, Baruchel A, Biondi A, de Bont E, Dresse MF, Suttorp M, et al.",
    "Managing children with chronic myeloid leukaemia (CML): recommendations for the management "
    "of CML in children and young people up to the age of 18 years",
    None,
    None,
    unconfirmed="seen only in a reference list (International BFM Group CML Committee): journal, "
    "year, pages, DOI and PMID not confirmed",
)
PAEDIATRIC2016 = Citation(
    "PAEDIATRIC-BLOOD2016",
    "Hijiya N, et al.",
    "Pediatric chronic myeloid leukemia is a unique disease that requires a different approach",
    "Blood",
    2016,
    "127(4):392",
    unconfirmed="author list, end page, DOI and PMID not confirmed",
)
IMATINIB_LABEL = Citation(
    "IMATINIB-SMPC",
    "European Medicines Agency",
    "Glivec (imatinib): summary of product characteristics, section 4.5 (interactions)",
    None,
    None,
    unconfirmed="edition and date not confirmed",
)

BIBLIOGRAPHY: dict[str, Citation] = {
    c.key: c
    for c in (
        ELN2020,
        ELN2013,
        ELN2009,
        CROSS2015,
        SOKAL1984,
        EUTOS2011,
        ELTS2016,
        IRIS2006,
        IRIS_ESCALATION2009,
        PICARD2007,
        STIM2010,
        STOP2G2017,
        DESTINY2017,
        SOVERINI2019,
        ASCIMINIB2019,
        PACE2013,
        PAEDIATRIC2014,
        PAEDIATRIC2016,
        IMATINIB_LABEL,
    )
}
