// Extensions on what fhir-cml writes: the machine-readable reading of a RiskAssessment, the basis
// of each conclusion and suggestion, and the link from a superseded assessment to its successor.
// URLs are the aliases generated from fhir_cml/fhir/canonical.py (generated/aliases.fsh).

Extension: AsOf
Id: as-of
Title: "As-of date"
Description: "The date the assessment reads the record as of: results after it are not used. Not the moment of writing, which is CarePlan.created and Provenance.occurred[x]."
Context: RiskAssessment, CarePlan, Provenance
* value[x] 1..1
* value[x] only date
* value[x] ^short = "The as-of date of the assessment"

Extension: RulesetVersion
Id: ruleset-version
Title: "Ruleset version"
Description: "The version of fhir-cml's rules (fhir_cml.domain.rules.catalogue.RULESET_VERSION) that made the assessment. A new version yields new identifiers, hence new suggestions."
Context: RiskAssessment, CarePlan
* value[x] 1..1
* value[x] only string
* value[x] ^short = "Ruleset version, e.g. 1.0.0"

Extension: MolecularResponseExtension
Id: molecular-response
Title: "Molecular response depth"
Description: "The depth of molecular response of the latest evaluable BCR::ABL1 result (MR5, MR4.5, MR4, MMR, no-MMR, not-evaluable)."
Context: RiskAssessment
* value[x] 1..1
* value[x] only CodeableConcept
* value[x] from MolecularResponseVS (required)

Extension: ElnResponseExtension
Id: eln-response
Title: "ELN response"
Description: "The guideline's reading of the response: the category, the milestone it was read at (absent when none applies) and the guideline."
Context: RiskAssessment
* extension contains
    status 1..1 and
    milestone 0..1 and
    guideline 1..1
* extension[status] ^short = "optimal | warning | suboptimal | failure | not-evaluable"
* extension[status].value[x] 1..1
* extension[status].value[x] only Coding
* extension[status].value[x] from ElnResponseVS (required)
* extension[milestone] ^short = "3m | 6m | 12m | 18m | any; absent when no milestone applies"
* extension[milestone].value[x] 1..1
* extension[milestone].value[x] only Coding
* extension[milestone].value[x] from ElnMilestoneVS (required)
* extension[guideline] ^short = "eln2020 | eln2013 | eln2009"
* extension[guideline].value[x] 1..1
* extension[guideline].value[x] only Coding
* extension[guideline].value[x] from CmlGuidelineVS (required)

Extension: TfrStatusExtension
Id: tfr-status
Title: "Treatment-free remission status"
Description: "Where the patient stands with respect to treatment-free remission (ELN 2020)."
Context: RiskAssessment
* value[x] 1..1
* value[x] only CodeableConcept
* value[x] from TfrStatusVS (required)

Extension: TdmStatusExtension
Id: tdm-status
Title: "Therapeutic drug monitoring status"
Description: "The reading of the latest imatinib trough level."
Context: RiskAssessment
* value[x] 1..1
* value[x] only CodeableConcept
* value[x] from TdmStatusVS (required)

Extension: NextPcrDue
Id: next-pcr-due
Title: "Next RQ-PCR due"
Description: "The date by which the next BCR::ABL1 RQ-PCR is due under the monitoring schedule; absent when no schedule applies."
Context: RiskAssessment
* value[x] 1..1
* value[x] only date

Extension: Basis
Id: basis
Title: "Basis"
Description: "What a conclusion or a suggestion rests on: the rule (its PlanDefinition, which cites the guideline), the sentence a clinician can check against the guideline, and the resources used."
Context: RiskAssessment, CarePlan.activity.detail, ServiceRequest, MedicationRequest, RequestGroup
* extension contains
    rule 1..1 and
    statement 1..1 and
    evidence 0..*
* extension[rule] ^short = "The rule's PlanDefinition"
* extension[rule].value[x] 1..1
* extension[rule].value[x] only Canonical(PlanDefinition)
* extension[statement] ^short = "The reasoning in one sentence"
* extension[statement].value[x] 1..1
* extension[statement].value[x] only string
* extension[evidence] ^short = "An input resource the statement rests on"
* extension[evidence].value[x] 1..1
* extension[evidence].value[x] only Reference

Extension: RiskScore
Id: risk-score
Title: "Baseline risk score"
Description: "A baseline risk score of the patient (Sokal, ELTS, EUTOS): which score, its value and its category. Not a RiskAssessment.prediction: a prediction states a probability (ras-2), which a category alone does not give."
Context: RiskAssessment
* extension contains
    score 1..1 and
    value 0..1 and
    category 1..1
* extension[score] ^short = "sokal-score | elts-score | eutos-score"
* extension[score].value[x] 1..1
* extension[score].value[x] only Coding
* extension[score].value[x] from CmlRiskScoreVS (required)
* extension[value] ^short = "The score's value, when the inputs gave one"
* extension[value].value[x] 1..1
* extension[value].value[x] only decimal
* extension[category] ^short = "low | intermediate | high"
* extension[category].value[x] 1..1
* extension[category].value[x] only Coding
* extension[category].value[x] from RiskCategoryVS (required)

Extension: ReplacedBy
Id: replaced-by
Title: "Replaced by"
Description: "A later, different assessment supersedes this one: the reference names its successor."
Context: RiskAssessment, CarePlan
* value[x] 1..1
* value[x] only Reference(RiskAssessment or CarePlan)

Extension: IssueResource
Id: issue-resource
Title: "Issue resource"
Description: "On an OperationOutcome issue: the input the issue concerns, as a reference when it is a resource, else by display (a file and entry name)."
Context: OperationOutcome.issue
* value[x] 1..1
* value[x] only Reference
* value[x] ^short = "The input resource (reference), or a file and entry name (display)"

Extension: RecommendationExtension
Id: recommendation
Title: "Recommendation"
Description: "On a CarePlan activity that refers to a proposed request (activity.reference, which has no code of its own): the fhir-cml recommendation that request carries out."
Context: CarePlan.activity
* value[x] 1..1
* value[x] only Coding
* valueCoding from CmlRecommendationVS (required)
