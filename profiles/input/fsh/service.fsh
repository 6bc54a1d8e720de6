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
* outputProfile = $PROFILE_ASSESS_OUTPUT
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
* parameter[4].documentation = "A Bundle (type collection, profile cml-assess-result): per assessed patient a RiskAssessment, a CarePlan, the requests it proposes (ServiceRequest, MedicationRequest, RequestGroup) and a Provenance, then one OperationOutcome with the issues. As the only output parameter it is the body of the answer, not wrapped in Parameters (outputProfile cml-assess-output describes the wrapped form)."

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
* date = "2026-12-01"
* publisher = "fhir-cml"
* description = "The FHIR R4 face of fhir-cml. As a server (rest mode server): the $cml-assess operation, which reads a CML patient's data (profiles bcr-abl1-result, imatinib-trough, kinase-domain-mutation, tki-medication-statement) and returns suggestions (profiles cml-risk-assessment, cml-care-plan, cml-service-request, cml-medication-request, cml-request-group, cml-provenance), and read and search by url of the conformance resources it publishes. As a client of the EHR's FHIR server (rest mode client): the reads, searches and writes it makes there, for the Patient-level operation with writeBack, the SMART app, CDS Hooks and the sync jobs. CDS Hooks services are described at GET /cds-services."
* kind = #instance
* implementation.description = "fhir-cml"
* fhirVersion = #4.0.1
* format[0] = #application/fhir+json
* format[1] = #json
// --- rest[0]: what this service serves ----------------------------------------------------------
* rest[0].mode = #server
* rest[0].documentation = "Base [public URL]/fhir. Every response is application/fhir+json; every error is an OperationOutcome. Suggestions only: nothing returned or written is an order (the CarePlan and the requests it proposes are drafts with intent proposal)."
* rest[0].security.cors = false
* rest[0].security.service = $RESTFUL_SECURITY_SERVICE#SMART-on-FHIR "SMART-on-FHIR"
* rest[0].security.description = "GET /metadata and the conformance resources are public. Patient/[id]/$cml-assess reads the EHR with the service's own credentials (SMART Backend Services), so its callers need a bearer access token from an authorization server the installation trusts (JWT or token introspection), with SMART v2 scopes covering the patient and, for writeBack=true, the writes; without a way to authenticate callers the operation is off (403) and GET /metadata serves no security. $cml-assess at the system level reads only the data posted to it."
* insert Conformance(0, CapabilityStatement)
* insert Conformance(1, OperationDefinition)
* insert Conformance(2, StructureDefinition)
* insert Conformance(3, CodeSystem)
* insert Conformance(4, ValueSet)
* insert Conformance(5, ConceptMap)
* insert Conformance(6, PlanDefinition)
* rest[0].resource[6].searchParam[0].definition = "http://hl7.org/fhir/SearchParameter/PlanDefinition-url"
* rest[0].resource[7].type = #Patient
* rest[0].resource[7].documentation = "Patient/[id]/$cml-assess (GET, or POST for writeBack=true) assesses one patient whose data the service fetches from the EHR's FHIR server. No other interaction: this server holds no patient data."
* rest[0].resource[7].operation[0].name = "cml-assess"
* rest[0].resource[7].operation[0].definition = $OPERATION_ASSESS
* insert Returned(8, RiskAssessment, $PROFILE_RISK_ASSESSMENT)
* rest[0].resource[8].documentation = "Returned by $cml-assess (the reading) and, with writeBack, written to the EHR. Not stored or served here."
* insert Returned(9, CarePlan, $PROFILE_CARE_PLAN)
* rest[0].resource[9].documentation = "Returned by $cml-assess (the suggestions, a draft proposal; never an order) and, with writeBack, written to the EHR. Not stored or served here."
* insert Returned(10, Provenance, $PROFILE_PROVENANCE)
* rest[0].resource[10].documentation = "Returned by $cml-assess (what produced the resources, from which inputs) and, with writeBack, written to the EHR. Not stored or served here."
* insert Returned(11, ServiceRequest, $PROFILE_SERVICE_REQUEST)
* rest[0].resource[11].documentation = "Returned by $cml-assess (a proposed test: BCR::ABL1 RQ-PCR, kinase-domain mutation analysis, imatinib trough level; intent proposal, referred to from the CarePlan) and, with writeBack, written to the EHR. Not stored or served here."
* insert Returned(12, MedicationRequest, $PROFILE_MEDICATION_REQUEST)
* rest[0].resource[12].documentation = "Returned by $cml-assess (a proposed TKI change: dose escalation, reduction, restart; intent proposal, no dose where the guideline gives none) and, with writeBack, written to the EHR. Not stored or served here."
* insert Returned(13, RequestGroup, $PROFILE_REQUEST_GROUP)
* rest[0].resource[13].documentation = "Returned by $cml-assess (a proposed TKI switch: the options, exactly one to choose, as contained MedicationRequest proposals) and, with writeBack, written to the EHR. Not stored or served here."
* rest[0].operation[0].name = "cml-assess"
* rest[0].operation[0].definition = $OPERATION_ASSESS
* rest[0].operation[0].documentation = "POST [base]/$cml-assess with the patient's data (a Parameters resource or a Bundle); also Patient/[id]/$cml-assess."
// --- rest[1]: what the service needs from the EHR's FHIR server ---------------------------------
* rest[1].mode = #client
* rest[1].documentation = "What fhir-cml does on the EHR's FHIR server (FHIR_CML_FHIR_BASE): searches for each assessed patient's inputs (many patients per search), searches for its own earlier suggestions, and writes the new ones in transactions (or batches where a server caps transactions) as conditional creates on the assessment fingerprint, superseding the previous suggestion with conditional updates (If-Match). The sync jobs also read changes since the last run (_lastUpdated) and Bulk Data exports."
* rest[1].security.service = $RESTFUL_SECURITY_SERVICE#SMART-on-FHIR "SMART-on-FHIR"
* rest[1].security.description = "SMART Backend Services (client_credentials grant with a private_key_jwt client assertion) with system scopes for what is read and written, or a bearer token given by the deployment; the SMART app acts with the clinician's launch token instead."
* rest[1].resource[0].type = #Patient
* rest[1].resource[0].interaction[0].code = #search-type
* rest[1].resource[0].searchParam[0].name = "_id"
* rest[1].resource[0].searchParam[0].definition = "http://hl7.org/fhir/SearchParameter/Resource-id"
* rest[1].resource[0].searchParam[0].type = #token
* rest[1].resource[0].searchParam[1].name = "_lastUpdated"
* rest[1].resource[0].searchParam[1].definition = "http://hl7.org/fhir/SearchParameter/Resource-lastUpdated"
* rest[1].resource[0].searchParam[1].type = #date
* rest[1].resource[0].operation[0].name = "export"
* rest[1].resource[0].operation[0].definition = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export"
* rest[1].resource[0].operation[0].documentation = "Bulk Data export of the inputs (sync --bulk)."
* rest[1].resource[1].type = #Group
* rest[1].resource[1].interaction[0].code = #read
* rest[1].resource[1].operation[0].name = "export"
* rest[1].resource[1].operation[0].definition = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export"
* rest[1].resource[1].operation[0].documentation = "The members of a Group (sync --group), read or exported."
* insert Input(2, Condition, "patient", "http://hl7.org/fhir/SearchParameter/clinical-patient", #reference)
* rest[1].resource[2].documentation = "Read as input to an assessment (docs/inbound.md): the CML diagnosis and phase."
* rest[1].resource[2].searchParam[2].name = "code"
* rest[1].resource[2].searchParam[2].definition = "http://hl7.org/fhir/SearchParameter/clinical-code"
* rest[1].resource[2].searchParam[2].type = #token
* insert Input(3, Observation, "patient", "http://hl7.org/fhir/SearchParameter/clinical-patient", #reference)
* rest[1].resource[3].documentation = "Read as input to an assessment (docs/inbound.md): BCR::ABL1, blood counts, cytogenetics, trough levels, kinase-domain mutations (narrowed to the codes read)."
* rest[1].resource[3].supportedProfile[0] = $PROFILE_BCR_ABL1
* rest[1].resource[3].supportedProfile[1] = $PROFILE_TROUGH
* rest[1].resource[3].supportedProfile[2] = $PROFILE_MUTATION
* rest[1].resource[3].searchParam[2].name = "code"
* rest[1].resource[3].searchParam[2].definition = "http://hl7.org/fhir/SearchParameter/clinical-code"
* rest[1].resource[3].searchParam[2].type = #token
* insert Input(4, MedicationStatement, "patient", "http://hl7.org/fhir/SearchParameter/clinical-patient", #reference)
* rest[1].resource[4].documentation = "Read as input to an assessment (docs/inbound.md): TKI therapy, strong CYP3A4 inhibitors and inducers; Medications named by reference come with _include=MedicationStatement:medication."
* rest[1].resource[4].supportedProfile[0] = $PROFILE_TKI_STATEMENT
* rest[1].resource[4].searchInclude[0] = "MedicationStatement:medication"
* rest[1].resource[4].searchParam[2].name = "code"
* rest[1].resource[4].searchParam[2].definition = "http://hl7.org/fhir/SearchParameter/clinical-code"
* rest[1].resource[4].searchParam[2].type = #token
* rest[1].resource[4].searchParam[3].name = "medication"
* rest[1].resource[4].searchParam[3].definition = "http://hl7.org/fhir/SearchParameter/medications-medication"
* rest[1].resource[4].searchParam[3].type = #reference
* rest[1].resource[4].searchParam[3].documentation = "By Medication reference, and chained (medication.code) to find the statements of a TKI named by a Medication."
* rest[1].resource[5].type = #Medication
* rest[1].resource[5].interaction[0].code = #search-type
* rest[1].resource[5].documentation = "Medications named by a MedicationStatement (included in its search); changed Medications (sync)."
* rest[1].resource[5].searchParam[0].name = "_lastUpdated"
* rest[1].resource[5].searchParam[0].definition = "http://hl7.org/fhir/SearchParameter/Resource-lastUpdated"
* rest[1].resource[5].searchParam[0].type = #date
* insert Input(6, AdverseEvent, "subject", "http://hl7.org/fhir/SearchParameter/AdverseEvent-subject", #reference)
* rest[1].resource[6].documentation = "Read as input to an assessment (docs/inbound.md): Adverse events of the TKI (dose reduction)."
* insert Written(7, RiskAssessment, $PROFILE_RISK_ASSESSMENT)
* rest[1].resource[7].searchRevInclude[0] = "Provenance:target"
* rest[1].resource[7].searchParam[1].name = "patient"
* rest[1].resource[7].searchParam[1].definition = "http://hl7.org/fhir/SearchParameter/clinical-patient"
* rest[1].resource[7].searchParam[1].type = #reference
* rest[1].resource[7].searchParam[1].documentation = "Every RiskAssessment of a patient, when nothing says which of fhir-cml's to look for (a repair after an interrupted write)."
* insert Written(8, CarePlan, $PROFILE_CARE_PLAN)
* rest[1].resource[8].documentation = "The current suggestion (draft) is found by patient, category cml-suggestions and status; a superseded one is revoked. Searched with the Provenances that target it."
* rest[1].resource[8].searchRevInclude[0] = "Provenance:target"
* rest[1].resource[8].searchInclude[0] = "CarePlan:activity-reference"
* rest[1].resource[8].searchParam[1].name = "patient"
* rest[1].resource[8].searchParam[1].definition = "http://hl7.org/fhir/SearchParameter/clinical-patient"
* rest[1].resource[8].searchParam[1].type = #reference
* rest[1].resource[8].searchParam[2].name = "category"
* rest[1].resource[8].searchParam[2].definition = "http://hl7.org/fhir/SearchParameter/CarePlan-category"
* rest[1].resource[8].searchParam[2].type = #token
* rest[1].resource[8].searchParam[3].name = "status"
* rest[1].resource[8].searchParam[3].definition = "http://hl7.org/fhir/SearchParameter/CarePlan-status"
* rest[1].resource[8].searchParam[3].type = #token
* rest[1].resource[9].type = #Provenance
* rest[1].resource[9].supportedProfile[0] = $PROFILE_PROVENANCE
* rest[1].resource[9].interaction[0].code = #create
* rest[1].resource[9].conditionalCreate = true
* rest[1].resource[9].documentation = "Created once per assessment: conditional create on target (target:RiskAssessment.identifier=..., or target=RiskAssessment/[id] once the RiskAssessment is known)."
* rest[1].resource[9].searchParam[0].name = "target"
* rest[1].resource[9].searchParam[0].definition = "http://hl7.org/fhir/SearchParameter/Provenance-target"
* rest[1].resource[9].searchParam[0].type = #reference
* rest[1].resource[9].searchParam[0].documentation = "Also chained to the RiskAssessment's identifier (target:RiskAssessment.identifier)."
* insert MedicationInput(10, MedicationRequest)
* rest[1].resource[10].documentation = "Read as input to an assessment (docs/inbound.md): TKI orders (US Core exposes medications as MedicationRequest), made into TKI courses; Medications named by reference come with _include. Written: a proposed TKI change (intent proposal, profile cml-medication-request; conditional create on its identifier, updated with If-Match when its suggestion is accepted, withdrawn or superseded). fhir-cml's own proposals are not read as TKI therapy."
* rest[1].resource[10].supportedProfile[0] = $PROFILE_MEDICATION_REQUEST
* rest[1].resource[10].interaction[1].code = #create
* rest[1].resource[10].interaction[2].code = #update
* rest[1].resource[10].interaction[3].code = #read
* rest[1].resource[10].conditionalCreate = true
* rest[1].resource[10].updateCreate = false
* rest[1].resource[10].versioning = #versioned-update
* rest[1].resource[10].searchParam[4].name = "identifier"
* rest[1].resource[10].searchParam[4].definition = "http://hl7.org/fhir/SearchParameter/clinical-identifier"
* rest[1].resource[10].searchParam[4].type = #token
* rest[1].resource[10].searchParam[4].documentation = "fhir-cml's proposals by identifier (<fingerprint>-<what>), or by the system alone with patient and status: the drafts an interrupted write may have left behind."
* rest[1].resource[10].searchParam[5].name = "status"
* rest[1].resource[10].searchParam[5].definition = "http://hl7.org/fhir/SearchParameter/medications-status"
* rest[1].resource[10].searchParam[5].type = #token
* insert MedicationInput(11, MedicationDispense)
* rest[1].resource[11].documentation = "Read as input when the deployment asks for it (sync: extra input types): TKI dispenses, made into TKI courses."
* insert MedicationInput(12, MedicationAdministration)
* rest[1].resource[12].documentation = "Read as input when the deployment asks for it (sync: extra input types): TKI administrations, made into TKI courses."
* insert Written(13, ServiceRequest, $PROFILE_SERVICE_REQUEST)
* rest[1].resource[13].documentation = "A proposed test (intent proposal): created once per assessment (conditional create on its identifier, <fingerprint>-<what>), referred to from the CarePlan, updated with If-Match when its suggestion is accepted, withdrawn or superseded."
* rest[1].resource[13].interaction[3].code = #read
* insert ProposalSearch(13, "http://hl7.org/fhir/SearchParameter/clinical-patient", "http://hl7.org/fhir/SearchParameter/ServiceRequest-status")
* insert Written(14, RequestGroup, $PROFILE_REQUEST_GROUP)
* rest[1].resource[14].documentation = "A proposed TKI switch (intent proposal, options as contained MedicationRequests): created once per assessment (conditional create on its identifier), referred to from the CarePlan, updated with If-Match when its suggestion is accepted, withdrawn or superseded."
* rest[1].resource[14].interaction[3].code = #read
* rest[1].resource[14].searchParam[0].definition = "http://hl7.org/fhir/SearchParameter/RequestGroup-identifier"
* insert ProposalSearch(14, "http://hl7.org/fhir/SearchParameter/RequestGroup-patient", "http://hl7.org/fhir/SearchParameter/RequestGroup-status")
* rest[1].interaction[0].code = #transaction
* rest[1].interaction[0].documentation = "Each group of patients in one transaction (conditional creates, If-Match updates, urn:uuid references)."
* rest[1].interaction[1].code = #batch
* rest[1].interaction[1].documentation = "For servers that cap transactions: one batch per dependency layer (readings and proposed requests, suggestions, records, clean-up)."
* rest[1].operation[0].name = "export"
* rest[1].operation[0].definition = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"
* rest[1].operation[0].documentation = "System-level Bulk Data export (sync --bulk without a Group)."

RuleSet: Conformance(i, type)
* rest[0].resource[{i}].type = #{type}
* rest[0].resource[{i}].interaction[0].code = #read
* rest[0].resource[{i}].interaction[1].code = #search-type
* rest[0].resource[{i}].searchParam[0].name = "url"
* rest[0].resource[{i}].searchParam[0].definition = "http://hl7.org/fhir/SearchParameter/conformance-url"
* rest[0].resource[{i}].searchParam[0].type = #uri
* rest[0].resource[{i}].documentation = "The project's own conformance resources of this type (the package org.fhir-cml.ig), read by id or searched by canonical url."

RuleSet: Returned(i, type, profile)
* rest[0].resource[{i}].type = #{type}
* rest[0].resource[{i}].supportedProfile[0] = {profile}

RuleSet: Input(i, type, param, definition, kind)
* rest[1].resource[{i}].type = #{type}
* rest[1].resource[{i}].interaction[0].code = #search-type
* rest[1].resource[{i}].searchParam[0].name = "_lastUpdated"
* rest[1].resource[{i}].searchParam[0].definition = "http://hl7.org/fhir/SearchParameter/Resource-lastUpdated"
* rest[1].resource[{i}].searchParam[0].type = #date
* rest[1].resource[{i}].searchParam[1].name = {param}
* rest[1].resource[{i}].searchParam[1].definition = {definition}
* rest[1].resource[{i}].searchParam[1].type = {kind}

RuleSet: Written(i, type, profile)
* rest[1].resource[{i}].type = #{type}
* rest[1].resource[{i}].supportedProfile[0] = {profile}
* rest[1].resource[{i}].interaction[0].code = #create
* rest[1].resource[{i}].interaction[1].code = #update
* rest[1].resource[{i}].interaction[2].code = #search-type
* rest[1].resource[{i}].conditionalCreate = true
* rest[1].resource[{i}].updateCreate = false
* rest[1].resource[{i}].versioning = #versioned-update
* rest[1].resource[{i}].documentation = "Created once per assessment (conditional create on its identifier); updated with If-Match when a later assessment supersedes it."
* rest[1].resource[{i}].searchParam[0].name = "identifier"
* rest[1].resource[{i}].searchParam[0].definition = "http://hl7.org/fhir/SearchParameter/clinical-identifier"
* rest[1].resource[{i}].searchParam[0].type = #token

RuleSet: ProposalSearch(i, patient, status)
* rest[1].resource[{i}].searchParam[0].documentation = "By identifier (<fingerprint>-<what>), or by the system alone with patient and status: the drafts an interrupted write may have left behind."
* rest[1].resource[{i}].searchParam[1].name = "patient"
* rest[1].resource[{i}].searchParam[1].definition = {patient}
* rest[1].resource[{i}].searchParam[1].type = #reference
* rest[1].resource[{i}].searchParam[2].name = "status"
* rest[1].resource[{i}].searchParam[2].definition = {status}
* rest[1].resource[{i}].searchParam[2].type = #token

RuleSet: MedicationInput(i, type)
* insert Input({i}, {type}, "patient", "http://hl7.org/fhir/SearchParameter/clinical-patient", #reference)
* rest[1].resource[{i}].searchInclude[0] = "{type}:medication"
* rest[1].resource[{i}].searchParam[2].name = "code"
* rest[1].resource[{i}].searchParam[2].definition = "http://hl7.org/fhir/SearchParameter/clinical-code"
* rest[1].resource[{i}].searchParam[2].type = #token
* rest[1].resource[{i}].searchParam[3].name = "medication"
* rest[1].resource[{i}].searchParam[3].definition = "http://hl7.org/fhir/SearchParameter/medications-medication"
* rest[1].resource[{i}].searchParam[3].type = #reference
* rest[1].resource[{i}].searchParam[3].documentation = "By Medication reference, and chained (medication.code) to find the records of a TKI named by a Medication."
