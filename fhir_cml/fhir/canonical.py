"""Canonical URLs and the project's own codes: the one place code and profiles/ both read.

profiles/ (FSH) is generated against these values and a test checks that the committed
conformance resources agree with them, so the engine, the service and the implementation guide
cannot drift apart.
"""

from __future__ import annotations

from typing import Final

BASE: Final = "https://fhir-cml.org/fhir"


def _cs(name: str) -> str:
    return f"{BASE}/CodeSystem/{name}"


def _sd(name: str) -> str:
    return f"{BASE}/StructureDefinition/{name}"


def _vs(name: str) -> str:
    return f"{BASE}/ValueSet/{name}"


# --- The response model's CodeSystems (codes = the values of fhir_cml.domain.vocabulary) ---------
CS_MOLECULAR_RESPONSE: Final = _cs("molecular-response")  # ResponseDepth
CS_ELN_RESPONSE: Final = _cs("eln-response")  # ElnStatus
CS_ELN_MILESTONE: Final = _cs("eln-milestone")  # Milestone
CS_TFR_STATUS: Final = _cs("tfr-status")  # TfrStatus
CS_TDM_STATUS: Final = _cs("tdm-status")  # TdmStatus
CS_THERAPY_STATUS: Final = _cs("therapy-status")  # TherapyStatus
CS_RISK_CATEGORY: Final = _cs("risk-category")  # RiskCategory
CS_RECOMMENDATION: Final = _cs("cml-recommendation")  # Recommendation
CS_GUIDELINE: Final = _cs("cml-guideline")  # Guideline
CS_ISSUE: Final = _cs("cml-issue")  # IssueCode
CS_TRANSCRIPT: Final = _cs("bcr-abl1-transcript")  # Transcript
CS_STOP_REASON: Final = _cs("tki-stop-reason")  # StopReason (MedicationStatement.statusReason)
# Why a clinician overrides a CDS Hooks card: CDS Hooks prescribes no set, and wants a display each.
CS_CDS_OVERRIDE_REASON: Final = _cs("cds-override-reason")
CDS_OVERRIDE_REASONS: Final = (
    ("not-applicable", "Not applicable to this patient"),
    ("already-addressed", "Already addressed"),
    ("data-out-of-date", "The data shown is incomplete or out of date"),
    ("specialist-decision", "Decided with the treating haematologist"),
    ("patient-preference", "Patient preference"),
)

# Codes for what has no confirmed LOINC/SNOMED code (docs/inbound.md), and for what the
# service writes: observation and component codes, the assessment, prediction outcomes, categories.
CS_CML: Final = _cs("cml")
ABL1_COPIES: Final = "abl1-copies"  # component: ABL1 control-gene copies in the sample
GUSB_COPIES: Final = "gusb-copies"  # component: GUSB control-gene copies in the sample
CONVERSION_FACTOR: Final = "conversion-factor"  # component: the laboratory's IS conversion factor
TRANSCRIPT_TYPE: Final = "transcript-type"  # component or Observation: e13a2 / e14a2 / ...
PH_POSITIVE_METAPHASES: Final = "ph-positive-metaphases"  # Observation: % Ph+ metaphases
METAPHASES_COUNTED: Final = "metaphases-counted"  # component
HIGH_RISK_ACA: Final = "high-risk-aca"  # component (boolean) of a cytogenetic Observation
CLONAL_ABNORMALITY_PH_POSITIVE: Final = "clonal-abnormality-ph-positive"  # component (boolean)
HEMATOLOGIC_RESPONSE: Final = "hematologic-response"  # Observation: CHR yes/no (valueBoolean)
TIME_SINCE_DOSE: Final = "time-since-last-dose"  # alternative to LOINC 45359-7
CML_ASSESSMENT: Final = "cml-response-assessment"  # RiskAssessment.code
CML_SUGGESTIONS: Final = "cml-suggestions"  # CarePlan.category
PROGRESSION_AP_BC: Final = "progression-ap-bc"  # RiskAssessment.prediction.outcome
MOLECULAR_RELAPSE_AFTER_STOP: Final = "molecular-relapse-after-stop"
SOKAL_SCORE: Final = "sokal-score"  # risk-score extension: the baseline score's name
ELTS_SCORE: Final = "elts-score"
EUTOS_SCORE: Final = "eutos-score"
MUTATION_ANALYSIS: Final = "kinase-domain-mutation-analysis"  # ServiceRequest.code (proposed test)
TROUGH_LEVEL: Final = "imatinib-trough-level"  # ServiceRequest.code (proposed test)

# --- Extensions --------------------------------------------------------------------------------
EXT_MOLECULAR_RESPONSE: Final = _sd("molecular-response")  # valueCodeableConcept
EXT_ELN_RESPONSE: Final = _sd("eln-response")  # complex: status, milestone, guideline
EXT_TFR_STATUS: Final = _sd("tfr-status")  # valueCodeableConcept
EXT_TDM_STATUS: Final = _sd("tdm-status")  # valueCodeableConcept
EXT_NEXT_PCR_DUE: Final = _sd("next-pcr-due")  # valueDate
EXT_AS_OF: Final = _sd("as-of")  # valueDate
EXT_RULESET_VERSION: Final = _sd("ruleset-version")  # valueString
EXT_BASIS: Final = _sd(
    "basis"
)  # complex: rule (canonical), statement (string), evidence (Reference)
EXT_REPLACED_BY: Final = _sd(
    "replaced-by"
)  # valueReference: a newer suggestion supersedes this one
EXT_RISK_SCORE: Final = _sd(
    "risk-score"
)  # complex on RiskAssessment: score (Coding), value (decimal), category (Coding)
EXT_RECOMMENDATION: Final = _sd(
    "recommendation"
)  # valueCoding on CarePlan.activity: the recommendation an activity.reference carries out
EXT_ISSUE_RESOURCE: Final = _sd(
    "issue-resource"
)  # valueReference on OperationOutcome.issue: the input resource the issue concerns

# --- Profiles ----------------------------------------------------------------------------------
PROFILE_BCR_ABL1: Final = _sd("bcr-abl1-result")
PROFILE_TROUGH: Final = _sd("imatinib-trough")
PROFILE_MUTATION: Final = _sd("kinase-domain-mutation")
PROFILE_TKI_STATEMENT: Final = _sd("tki-medication-statement")
PROFILE_TKI_REQUEST: Final = _sd("tki-medication-request")  # TKI orders read as input
PROFILE_RISK_ASSESSMENT: Final = _sd("cml-risk-assessment")
PROFILE_CARE_PLAN: Final = _sd("cml-care-plan")
PROFILE_PROVENANCE: Final = _sd("cml-provenance")
PROFILE_SERVICE_REQUEST: Final = _sd("cml-service-request")  # a proposed test
PROFILE_MEDICATION_REQUEST: Final = _sd("cml-medication-request")  # a proposed TKI change
PROFILE_REQUEST_GROUP: Final = _sd("cml-request-group")  # proposed alternatives (switch options)
PROFILE_ASSESS_RESULT: Final = _sd("cml-assess-result")  # Bundle: what $cml-assess returns
PROFILE_ASSESS_OUTPUT: Final = _sd("cml-assess-output")  # Parameters: the operation's outputProfile

# --- ValueSets ---------------------------------------------------------------------------------
VS_TKI: Final = _vs("tki")
VS_CYP3A4: Final = _vs("strong-cyp3a4-modulators")
VS_BCR_ABL1_CODES: Final = _vs("bcr-abl1-result-codes")

# --- Identifiers and operations ----------------------------------------------------------------
ID_ASSESSMENT: Final = f"{BASE}/identifier/assessment"  # RiskAssessment.identifier
ID_CARE_PLAN: Final = f"{BASE}/identifier/care-plan"  # CarePlan.identifier
ID_REQUEST: Final = f"{BASE}/identifier/request"  # proposed requests: <fingerprint>-<what>
OPERATION_ASSESS: Final = f"{BASE}/OperationDefinition/cml-assess"
CAPABILITY_STATEMENT: Final = f"{BASE}/CapabilityStatement/fhir-cml"
DEVICE_IDENTIFIER: Final = f"{BASE}/identifier/software"  # the Provenance agent (this software)

# --- ConceptMaps (profiles/tools/conceptmaps.py) -------------------------------------------------
CONCEPT_MAP_MCODE: Final = f"{BASE}/ConceptMap/response-to-mcode-disease-status"
CONCEPT_MAP_RKKP: Final = f"{BASE}/ConceptMap/response-to-rkkp"
CONCEPT_MAP_REQUESTS: Final = f"{BASE}/ConceptMap/recommendation-to-request"


def plan_definition(rule_id: str) -> str:
    """The PlanDefinition that publishes a rule (rule ids from domain.rules.catalogue)."""
    return f"{BASE}/PlanDefinition/{rule_id}"


# --- External systems --------------------------------------------------------------------------
LOINC: Final = "http://loinc.org"
SNOMED: Final = "http://snomed.info/sct"
RXNORM: Final = "http://www.nlm.nih.gov/research/umls/rxnorm"
ATC: Final = "http://www.whocc.no/atc"
UCUM: Final = "http://unitsofmeasure.org"
HGVS: Final = "http://varnomen.hgvs.org"
HGNC: Final = "http://www.genenames.org/geneId"
V3_INTERPRETATION: Final = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
V3_TIMING: Final = "http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation"
DATA_ABSENT_REASON: Final = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
OBSERVATION_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/observation-category"
PROVENANCE_PARTICIPANT: Final = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
PROVENANCE_ACTIVITY: Final = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
URI_IDENTIFIER: Final = "urn:ietf:rfc:3986"  # Identifier.system when the value is a URI
GENOMICS_VARIANT_PROFILE: Final = (
    "http://hl7.org/fhir/uv/genomics-reporting/StructureDefinition/variant"
)
ICD10: Final = "http://hl7.org/fhir/sid/icd-10"
ICD10_CM: Final = "http://hl7.org/fhir/sid/icd-10-cm"
ICD_O_3: Final = "http://terminology.hl7.org/CodeSystem/icd-o-3"
M49: Final = "http://unstats.un.org/unsd/methods/m49/m49.htm"  # jurisdiction: 001 World
RESTFUL_SECURITY_SERVICE: Final = "http://terminology.hl7.org/CodeSystem/restful-security-service"
# mCODE (STU4) Cancer Disease Status: an Observation coded LOINC 97509-4 whose value is from the
# Condition Status Trend value set (SNOMED CT)
MCODE_DISEASE_STATUS_PROFILE: Final = (
    "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-cancer-disease-status"
)
MCODE_CONDITION_STATUS_TREND_VS: Final = (
    "http://hl7.org/fhir/us/mcode/ValueSet/mcode-condition-status-trend-vs"
)
# The Danish clinical quality registries' (RKKP) KIP implementation guide: the CML response
# value set BehandlingsresponsCML and the molecular remission codes
RKKP_TREATMENT_RESPONSE: Final = "https://kip.rkkp.dk/fhir/CodeSystem/TreatmentResponseEvaluation"
RKKP_MOLECULAR_REMISSION: Final = "https://kip.rkkp.dk/fhir/CodeSystem/MolecularRemission"
RKKP_CML_RESPONSE_VS: Final = "https://kip.rkkp.dk/fhir/ValueSet/BehandlingsresponsCML"
