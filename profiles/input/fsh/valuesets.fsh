// ValueSets of external codes that the hand-written profiles bind to or that document what the
// service reads. Only codes confirmed against public sources are listed. The project's own
// ValueSets and those of codes the inbound mapper looks up in tables are generated.

ValueSet: BcrAbl1DetectionVS
Id: bcr-abl1-detection
Title: "BCR::ABL1 detected / not detected"
Description: "Coded qualitative BCR::ABL1 results: Not detected means undetectable at the sample's sensitivity (given by the control-gene copies)."
* ^experimental = false
* $SNOMED#260415000 "Not detected"
* $SNOMED#260373001 "Detected"

ValueSet: CmlCarePlanStatusVS
Id: cml-care-plan-status
Title: "Statuses of a fhir-cml suggestion"
Description: "A suggestion (CarePlan) and a test it proposes (ServiceRequest) or an alternative (RequestGroup) are written as draft; they become active when a clinician accepts the suggestion, revoked when a clinician withdraws it or a later, different assessment supersedes it."
* ^experimental = false
* http://hl7.org/fhir/request-status#draft "Draft"
* http://hl7.org/fhir/request-status#active "Active"
* http://hl7.org/fhir/request-status#revoked "Revoked"

ValueSet: CmlMedicationRequestStatusVS
Id: cml-medication-request-status
Title: "Statuses of a fhir-cml proposed TKI change"
Description: "A proposed TKI change (MedicationRequest, intent proposal) is written as draft; it becomes active when a clinician accepts the suggestion, cancelled when a clinician withdraws it or a later, different assessment supersedes it (MedicationRequest has no revoked)."
* ^experimental = false
* http://hl7.org/fhir/CodeSystem/medicationrequest-status#draft "Draft"
* http://hl7.org/fhir/CodeSystem/medicationrequest-status#active "Active"
* http://hl7.org/fhir/CodeSystem/medicationrequest-status#cancelled "Cancelled"

ValueSet: CmlDiagnosisVS
Id: cml-diagnosis
Title: "CML diagnosis"
Description: "The Condition codes fhir-cml reads as chronic myeloid leukemia. Also read: ICD-10 C92.1 (http://hl7.org/fhir/sid/icd-10, any national edition, e.g. http://hl7.org/fhir/sid/icd-10-cm C92.10-C92.12) and ICD-O-3 morphology 9875/3 (http://terminology.hl7.org/CodeSystem/icd-o-3); not listed here until confirmed against the terminologies."
* ^experimental = false
* $SNOMED#92818009 "Chronic myeloid leukemia (disorder)"

ValueSet: CmlPhaseVS
Id: cml-phase
Title: "CML phase"
Description: "The phase of CML in Condition.stage.summary, as the mCODE CML phase value set codes it: chronic, accelerated, and acute (blast) phase."
* ^experimental = false
* $SNOMED#278177007 "Chronic phase (qualifier value)"
* $SNOMED#278179005 "Accelerated phase (qualifier value)"
* $SNOMED#255251009 "Acute phase (qualifier value)"
