// Profiles of what fhir-cml writes (docs/outbound.md). Strict: every resource the engine writes
// is validated against them in the test suite.

RuleSet: Software(path)
* {path}.identifier 1..1
* {path}.identifier.system 1..1
* {path}.identifier.system = $DEVICE_IDENTIFIER (exactly)
* {path}.identifier.value 1..1
* {path}.identifier.value = "fhir-cml" (exactly)
* {path}.display MS
* {path} ^short = "fhir-cml (identifier; display names the version and the rules version)"

Profile: CmlRiskAssessment
Parent: RiskAssessment
Id: cml-risk-assessment
Title: "CML response assessment"
Description: "fhir-cml's reading of a CML patient's response to TKI therapy as of a date: molecular response depth, ELN category and milestone, TFR and TDM status and the next RQ-PCR in extensions; trial evidence as predictions (probabilities in percent), baseline risk scores in risk-score extensions; the suggestions in mitigation; the reading in notes; every input in basis."
* extension contains
    $EXT_AS_OF named asOf 1..1 MS and
    $EXT_RULESET_VERSION named rulesetVersion 1..1 MS and
    $EXT_MOLECULAR_RESPONSE named molecularResponse 1..1 MS and
    $EXT_ELN_RESPONSE named elnResponse 1..1 MS and
    $EXT_TFR_STATUS named tfrStatus 1..1 MS and
    $EXT_TDM_STATUS named tdmStatus 1..1 MS and
    $EXT_NEXT_PCR_DUE named nextPcrDue 0..1 MS and
    $EXT_BASIS named basis 0..* MS and
    $EXT_RISK_SCORE named riskScore 0..* MS and
    $EXT_REPLACED_BY named replacedBy 0..1 MS
* extension[basis] ^short = "The basis of each conclusion of the reading"
* extension[riskScore] ^short = "Each evaluable baseline risk score (Sokal, ELTS, EUTOS)"
* extension[replacedBy] ^short = "Set when a later, different assessment supersedes this one"
* identifier 1..* MS
* identifier ^slicing.discriminator.type = #value
* identifier ^slicing.discriminator.path = "system"
* identifier ^slicing.rules = #open
* identifier contains fingerprint 1..1 MS
* identifier[fingerprint].system 1..1
* identifier[fingerprint].system = $ID_ASSESSMENT (exactly)
* identifier[fingerprint].value 1..1
* identifier[fingerprint] ^short = "The assessment fingerprint (SHA-256, hex)"
* identifier[fingerprint] ^comment = "A hash over the patient, ruleset version, guideline, the inputs used and the coded conclusions; not the texts or the as-of date. Conditional creates on it make re-runs idempotent."
* status MS
* status = #final (exactly)
* method 1..1 MS
* method from CmlGuidelineVS (required)
* method ^short = "The guideline; text names the rules version, e.g. fhir-cml rules 1.0.0 - ELN 2020"
* code 1..1 MS
* code = $CS_CML#cml-response-assessment
* subject MS
* subject only Reference(Patient)
* occurrence[x] 1..1 MS
* occurrence[x] only dateTime
* occurrence[x] ^short = "The as-of date"
* condition MS
* condition ^short = "The CML Condition, when there is one"
* performer 1..1 MS
* insert Software(performer)
* basis MS
* basis ^short = "Every input the reading used"
* prediction MS
* prediction.outcome 1..1 MS
* prediction.outcome from CmlPredictionOutcomeVS (required)
* prediction.probability[x] 1..1 MS
* prediction.probability[x] only decimal
* prediction.probability[x] ^short = "A percentage (0-100), as R4 requires (ras-2)"
* prediction.probability[x] ^comment = "Always given: servers that evaluate ras-2 as published (probability is decimal implies (probability as decimal) <= 100) strictly refuse a prediction without one. Baseline risk categories are in the risk-score extension."
* prediction.qualitativeRisk 0..0
* prediction.when[x] only Range
* prediction.when[x] MS
* prediction.when[x] ^short = "Horizon of a trial outcome: high in years (UCUM a)"
* prediction.rationale MS
* prediction.rationale ^short = "The basis sentence, the rule and its source"
* mitigation MS
* mitigation ^short = "The suggestions, one line each"
* note MS
* note ^short = "The reading in sentences"

Profile: CmlCarePlan
Parent: CarePlan
Id: cml-care-plan
Title: "CML suggestions"
Description: "fhir-cml's suggestions for a clinician to review, never orders: a draft proposal with one activity per suggestion, coded from the cml-recommendation CodeSystem, with its reasons and the rules (PlanDefinitions) it rests on."
* identifier 1..* MS
* identifier ^slicing.discriminator.type = #value
* identifier ^slicing.discriminator.path = "system"
* identifier ^slicing.rules = #open
* identifier contains fingerprint 1..1 MS
* identifier[fingerprint].system 1..1
* identifier[fingerprint].system = $ID_CARE_PLAN (exactly)
* identifier[fingerprint].value 1..1
* identifier[fingerprint] ^short = "The assessment fingerprint (as on the RiskAssessment)"
* status MS
* status from CmlCarePlanStatusVS (required)
* status ^short = "draft; active once a clinician accepts it; revoked once withdrawn or superseded"
* status ^comment = "Written as draft. A clinician's Accept (the SMART app) makes it active; a Dismiss, or a later, different assessment that supersedes it, makes it revoked (the new one names it in replaces). Its requests follow."
* intent MS
* intent = #proposal (exactly)
* category 1..* MS
* category ^slicing.discriminator.type = #pattern
* category ^slicing.discriminator.path = "$this"
* category ^slicing.rules = #open
* category contains suggestions 1..1 MS
* category[suggestions] = $CS_CML#cml-suggestions
* title 1..1 MS
* description MS
* subject MS
* subject only Reference(Patient)
* extension contains $EXT_AS_OF named asOf 1..1 MS
* extension[asOf] ^short = "The as-of date of the reading behind the suggestions"
* created 1..1 MS
* created ^short = "The moment of writing (the as-of date is in the asOf extension)"
* author 1..1 MS
* insert Software(author)
* addresses MS
* addresses ^short = "The CML Condition, when there is one"
* supportingInfo 1..* MS
* supportingInfo only Reference(RiskAssessment)
* supportingInfo ^short = "The RiskAssessment with the reading"
* replaces MS
* replaces ^short = "The CarePlan this one supersedes"
* note 1..* MS
* note ^short = "Suggestions from fhir-cml for a clinician to review; not orders."
* activity MS
* activity obeys cml-cp-1 and cml-cp-2
* activity ^short = "One per suggestion: the proposed request that carries it out (reference), or a described activity (detail)"
* activity.extension contains $EXT_RECOMMENDATION named recommendation 0..1 MS
* activity.extension[recommendation] ^short = "The recommendation the referenced request carries out"
* activity.reference MS
* activity.reference only Reference(CmlServiceRequest or CmlMedicationRequest or CmlRequestGroup)
* activity.reference ^short = "The proposed ServiceRequest, MedicationRequest or RequestGroup (intent proposal); display: the suggestion in words"
* activity.detail 0..1 MS
* activity.detail.extension contains $EXT_BASIS named basis 0..* MS
* activity.detail.instantiatesCanonical MS
* activity.detail.instantiatesCanonical only Canonical(PlanDefinition)
* activity.detail.instantiatesCanonical ^short = "The rules' PlanDefinitions"
* activity.detail.code 1..1 MS
* activity.detail.code from CmlRecommendationVS (required)
* activity.detail.code ^short = "The recommendation code (the JSON output's recommendations[].code)"
* activity.detail.reasonCode MS
* activity.detail.reasonCode ^short = "The basis sentences"
* activity.detail.reasonReference MS
* activity.detail.reasonReference ^short = "The Observations and Conditions among the evidence"
* activity.detail.status MS
* activity.detail.status ^short = "not-started when written"
* activity.detail.description 1..1 MS

Invariant: cml-cp-1
Description: "Each suggestion is either a proposed request (reference) or a described activity (detail), never both and never neither."
Expression: "reference.exists() xor detail.exists()"
Severity: #error

Invariant: cml-cp-2
Description: "An activity that refers to a proposed request names the recommendation it carries out."
Expression: "reference.exists() implies extension.where(url = 'https://fhir-cml.org/fhir/StructureDefinition/recommendation').exists()"
Severity: #error

Profile: CmlAssessResult
Parent: Bundle
Id: cml-assess-result
Title: "$cml-assess result"
Description: "What $cml-assess returns: a Bundle (collection) with, per assessed patient, the RiskAssessment, the CarePlan, the requests it proposes and the Provenance, then one OperationOutcome with every issue met while reading and assessing."
* type = #collection (exactly)
* timestamp 1..1 MS
* timestamp ^short = "The moment of writing"
* entry 1..* MS
* entry.fullUrl 1..1 MS
* entry.resource 1..1 MS
* entry.resource only RiskAssessment or CarePlan or ServiceRequest or MedicationRequest or RequestGroup or Provenance or OperationOutcome
* entry.search 0..0
* entry.request 0..0
* entry.response 0..0

Profile: CmlAssessOutput
Parent: Parameters
Id: cml-assess-output
Title: "$cml-assess output parameters"
Description: "The output of $cml-assess as Parameters (its outputProfile): one parameter, return, holding the result Bundle. Because return is the only output and a resource, the operation answers with the Bundle itself."
* parameter 1..1 MS
* parameter.name = "return" (exactly)
* parameter.value[x] 0..0
* parameter.resource 1..1 MS
* parameter.resource only CmlAssessResult
* parameter.part 0..0

Invariant: cml-prov-1
Description: "fhir-cml is exactly one of the agents, as the assembler."
Expression: "agent.where(type.coding.where(system = 'http://terminology.hl7.org/CodeSystem/provenance-participant-type' and code = 'assembler').exists() and who.identifier.where(system = 'https://fhir-cml.org/fhir/identifier/software' and value = 'fhir-cml').exists()).count() = 1"
Severity: #error

Profile: CmlProvenance
Parent: Provenance
Id: cml-provenance
Title: "Provenance of fhir-cml's output"
Description: "What produced a RiskAssessment and its CarePlan: fhir-cml (the software, as the assembler) and, when a clinician accepted the suggestion, who; when, as of which date, and from which inputs."
* target MS
* target only Reference(RiskAssessment or CarePlan or ServiceRequest or MedicationRequest or RequestGroup)
* target ^short = "The RiskAssessment, the CarePlan and the requests it proposes"
* extension contains $EXT_AS_OF named asOf 1..1 MS
* extension[asOf] ^short = "The as-of date of the reading the targets hold"
* occurred[x] 1..1 MS
* occurred[x] only dateTime
* occurred[x] ^short = "The moment of writing (as recorded; the as-of date is in the asOf extension)"
* recorded MS
* recorded ^short = "The moment of writing"
* activity 1..1 MS
* activity = $PROVENANCE_ACTIVITY#CREATE
* obeys cml-prov-1
* agent 1..* MS
* agent ^short = "fhir-cml, the software that assembled the resources (cml-prov-1); and the clinician whose decision led to the write, if any"
* agent ^comment = "fhir-cml is always an agent, as assembler (cml-prov-1). When a clinician accepted the suggestion (the SMART app), they are a further agent, as verifier. (Not sliced: Provenance.entity.agent refers to this element's definition.)"
* agent.type 1..1
* agent.who MS
* entity MS
* entity.role = #source (exactly)
* entity.what MS
* entity ^short = "Each input used"

// --- Proposed requests (fhir_cml/fhir/outbound/requests.py) -------------------------------------
// The FHIR workflow request pattern as the Clinical Practice Guidelines IG applies it: a
// recommendation is a request with intent proposal, status draft, referred to from the CarePlan's
// activity.reference.

RuleSet: Proposal
* extension contains $EXT_BASIS named basis 0..* MS
* identifier 1..* MS
* identifier ^slicing.discriminator.type = #value
* identifier ^slicing.discriminator.path = "system"
* identifier ^slicing.rules = #open
* identifier contains suggestion 1..1 MS
* identifier[suggestion].system 1..1
* identifier[suggestion].system = $ID_REQUEST (exactly)
* identifier[suggestion].value 1..1
* identifier[suggestion] ^short = "The assessment fingerprint and what is proposed: <fingerprint>-<what>"
* instantiatesCanonical MS
* instantiatesCanonical ^short = "The rules' PlanDefinitions"
* status MS
* intent MS
* intent = #proposal (exactly)
* intent ^short = "proposal: fhir-cml proposes, a clinician decides and orders"
* subject MS
* subject only Reference(Patient)
* authoredOn 1..1 MS
* authoredOn ^short = "The moment of writing"
* reasonCode MS
* reasonCode ^short = "The basis sentences"
* reasonReference MS
* reasonReference ^short = "The Observations and Conditions among the evidence"
* note 1..* MS
* note ^short = "The suggestion(s) in words, then: a proposal for a clinician to review, not an order"

Profile: CmlServiceRequest
Parent: ServiceRequest
Id: cml-service-request
Title: "CML proposed test"
Description: "A test fhir-cml proposes (a BCR::ABL1 RQ-PCR, a kinase-domain mutation analysis, an imatinib trough level): a ServiceRequest with intent proposal, referred to from the CarePlan's activity, that an ordering workflow can turn into an order once a clinician accepts it."
* insert Proposal
* status from CmlCarePlanStatusVS (required)
* status ^short = "draft; active once a clinician accepts the suggestion; revoked when withdrawn or superseded"
* category 1..* MS
* category from CmlRecommendationVS (required)
* category ^short = "The recommendation(s) this test carries out"
* code 1..1 MS
* code ^short = "What to test: LOINC where the code is confirmed, else the cml code, with text"
* occurrence[x] MS
* occurrence[x] only Period
* occurrence[x] ^short = "When the test is due (end: by when), where the schedule says"
* requester 1..1 MS
* insert Software(requester)
* doNotPerform 0..0

Profile: CmlMedicationRequest
Parent: MedicationRequest
Id: cml-medication-request
Title: "CML proposed TKI change"
Description: "A change of TKI therapy fhir-cml proposes (an imatinib dose escalation, a dose reduction, a restart after molecular relapse): a MedicationRequest with intent proposal, referred to from the CarePlan's activity. It carries a dose only where the guideline gives one (the escalation steps); otherwise the dose is left to the clinician and the dosage text says so."
* insert Proposal
* status from CmlMedicationRequestStatusVS (required)
* status ^short = "draft; active once a clinician accepts the suggestion; cancelled when withdrawn or superseded"
* category 1..1 MS
* category from CmlRecommendationVS (required)
* category ^short = "The recommendation this change carries out"
* medication[x] MS
* medication[x] only CodeableConcept
* medication[x] from TkiVS (required)
* medication[x] ^short = "The TKI (ATC and RxNorm ingredient), with its name as text"
* requester 1..1 MS
* insert Software(requester)
* dosageInstruction 1..1 MS
* dosageInstruction.text 1..1 MS
* dosageInstruction ^short = "The proposed daily dose where the guideline gives one; else a text saying the clinician sets it"
* reported[x] 0..0
* doNotPerform 0..0

Profile: CmlRequestGroup
Parent: RequestGroup
Id: cml-request-group
Title: "CML proposed TKI switch"
Description: "A switch of TKI fhir-cml proposes among the drugs the guideline names (T315I: ponatinib or asciminib): a RequestGroup with intent proposal, referred to from the CarePlan's activity, whose one action holds the options, exactly one to choose, each a contained MedicationRequest proposal without a dose."
* insert Proposal
* status from CmlCarePlanStatusVS (required)
* status ^short = "draft; active once a clinician accepts the suggestion; revoked when withdrawn or superseded"
* code 1..1 MS
* code from CmlRecommendationVS (required)
* code ^short = "The recommendation (switch-tki)"
* author 1..1 MS
* insert Software(author)
* contained MS
* contained only MedicationRequest
* contained ^short = "The options: MedicationRequest proposals (intent proposal, no dose)"
* action 1..1 MS
* action.selectionBehavior 1..1 MS
* action.selectionBehavior = #exactly-one (exactly)
* action.action 1..* MS
* action.action.resource 1..1 MS
* action.action.resource only Reference(MedicationRequest)
* action.action.resource ^short = "One option: a contained MedicationRequest (#drug)"
