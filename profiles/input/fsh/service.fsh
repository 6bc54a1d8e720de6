// The FHIR face of the service: the $cml-assess operation and the CapabilityStatement served at
// GET [base]/metadata. CDS Hooks and the SMART app are described in the service documentation.

Instance: cml-assess
InstanceOf: OperationDefinition
Title: "Assess CML response"
Usage: #definition
* url = $OPERATION_ASSESS
* version = "0.1.0"
* name = "CmlAssess"
* title = "Assess CML response"
* status = #draft
* kind = #operation
* experimental = false
* publisher = "fhir-cml"
* description = "Reads a CML patient's FHIR data and returns fhir-cml's reading and suggestions: a Bundle (type collection) with a RiskAssessment (profile cml-risk-assessment), a CarePlan (cml-care-plan, a draft proposal) and a Provenance (cml-provenance) per assessed patient, and an OperationOutcome with the issues met while reading and assessing. At the system level the input carries the data; at the Patient instance level the service fetches the patient's resources from its configured FHIR server."
* comment = "Suggestions only: nothing returned or written is an order. With writeBack=true the resources are written to the EHR's FHIR server (conditional creates on the assessment fingerprint, so a re-run creates nothing new); send it with POST."
* affectsState = false
* code = #cml-assess
* resource[0] = #Patient
* system = true
* type = false
* instance = true
* parameter[0].name = #resource
* parameter[0].use = #in
* parameter[0].min = 0
* parameter[0].max = "*"
* parameter[0].type = #Resource
* parameter[0].documentation = "The data to assess: a Bundle (any type) or single resources (Patient, Condition, Observation, MedicationStatement, AdverseEvent), one Parameters part each. The body may also be a Bundle instead of a Parameters resource. At the Patient instance level, resources given here are added to those fetched."
* parameter[1].name = #asOf
* parameter[1].use = #in
* parameter[1].min = 0
* parameter[1].max = "1"
* parameter[1].type = #date
* parameter[1].documentation = "The date to read the record as of; results after it are not used. Default: today."
* parameter[2].name = #guideline
* parameter[2].use = #in
* parameter[2].min = 0
* parameter[2].max = "1"
* parameter[2].type = #code
* parameter[2].binding.strength = #required
* parameter[2].binding.valueSet = "https://fhir-cml.org/fhir/ValueSet/cml-guideline"
* parameter[2].documentation = "The guideline to read the response against: eln2020 (default), eln2013 or eln2009."
* parameter[3].name = #writeBack
* parameter[3].use = #in
* parameter[3].min = 0
* parameter[3].max = "1"
* parameter[3].type = #boolean
* parameter[3].documentation = "Patient instance level only: also write the RiskAssessment, CarePlan and Provenance to the EHR's FHIR server. Default: false."
* parameter[4].name = #return
* parameter[4].use = #out
* parameter[4].min = 1
* parameter[4].max = "1"
* parameter[4].type = #Bundle
* parameter[4].documentation = "A Bundle (type collection): per assessed patient a RiskAssessment, a CarePlan and a Provenance, then one OperationOutcome with the issues."

Instance: fhir-cml
InstanceOf: CapabilityStatement
Title: "fhir-cml FHIR service"
Usage: #definition
* url = $CAPABILITY_STATEMENT
* version = "0.1.0"
* name = "FhirCml"
* title = "fhir-cml FHIR service"
* status = #draft
* experimental = false
* date = "2026-11-21"
* publisher = "fhir-cml"
* description = "The FHIR R4 face of fhir-cml: the $cml-assess operation, which reads a CML patient's data (profiles bcr-abl1-result, imatinib-trough, kinase-domain-mutation, tki-medication-statement) and returns or writes back suggestions (profiles cml-risk-assessment, cml-care-plan, cml-provenance). CDS Hooks services and the SMART app are described in the service documentation."
* kind = #instance
* implementation.description = "fhir-cml"
* fhirVersion = #4.0.1
* format[0] = #application/fhir+json
* format[1] = #json
* rest[0].mode = #server
* rest[0].documentation = "Every response is application/fhir+json; every error is an OperationOutcome."
* rest[0].resource[0].type = #Patient
* rest[0].resource[0].documentation = "Patient/[id]/$cml-assess assesses one patient whose data the service fetches from its configured FHIR server."
* rest[0].resource[0].operation[0].name = "cml-assess"
* rest[0].resource[0].operation[0].definition = $OPERATION_ASSESS
* rest[0].resource[1].type = #Observation
* rest[0].resource[1].supportedProfile[0] = $PROFILE_BCR_ABL1
* rest[0].resource[1].supportedProfile[1] = $PROFILE_TROUGH
* rest[0].resource[1].supportedProfile[2] = $PROFILE_MUTATION
* rest[0].resource[1].documentation = "Read as input to $cml-assess (docs/inbound.md)."
* rest[0].resource[2].type = #MedicationStatement
* rest[0].resource[2].supportedProfile[0] = $PROFILE_TKI_STATEMENT
* rest[0].resource[2].documentation = "Read as input to $cml-assess: TKI therapy and strong CYP3A4 inhibitors and inducers."
* rest[0].resource[3].type = #RiskAssessment
* rest[0].resource[3].supportedProfile[0] = $PROFILE_RISK_ASSESSMENT
* rest[0].resource[3].documentation = "Returned by $cml-assess and, with writeBack, written to the EHR."
* rest[0].resource[4].type = #CarePlan
* rest[0].resource[4].supportedProfile[0] = $PROFILE_CARE_PLAN
* rest[0].resource[4].documentation = "Returned by $cml-assess and, with writeBack, written to the EHR: a draft proposal, never an order."
* rest[0].resource[5].type = #Provenance
* rest[0].resource[5].supportedProfile[0] = $PROFILE_PROVENANCE
* rest[0].resource[5].documentation = "Returned by $cml-assess and, with writeBack, written to the EHR."
* rest[0].operation[0].name = "cml-assess"
* rest[0].operation[0].definition = $OPERATION_ASSESS
