// ValueSets of external codes that the hand-written profiles bind to. Only codes confirmed
// against public sources are listed (LOINC, SNOMED CT); the project's own ValueSets are generated.

ValueSet: BcrAbl1ResultCodesVS
Id: bcr-abl1-result-codes
Title: "BCR::ABL1 result codes"
Description: "LOINC codes of a BCR::ABL1 quantification that fhir-cml reads: the ratio on the International Scale (69380-4), ratios not on the IS (55147-3, 46434-7; used only with a conversion factor), log reductions (50195-7 blood, 82905-1 bone marrow) and the e1a2 (p190) ratio (52132-8; kept, never used for milestones)."
* ^url = "https://fhir-cml.org/fhir/ValueSet/bcr-abl1-result-codes"
* ^experimental = false
* $LOINC#69380-4 "t(9;22)(q34.1;q11)(ABL1,BCR) b2a2+b3a2 fusion transcript/control transcript (International Scale) [# Ratio] in Blood or Tissue by Molecular genetics method"
* $LOINC#55147-3 "t(9;22)(q34.1;q11)(ABL1,BCR) b2a2+b3a2 fusion transcript/control transcript [# Ratio] in Blood or Tissue by Molecular genetics method"
* $LOINC#46434-7 "t(9;22)(q34.1;q11)(ABL1,BCR) fusion transcript/control transcript [# Ratio] in Blood or Tissue by Molecular genetics method"
* $LOINC#50195-7 "t(9;22)(q34.1;q11)(ABL1,BCR) fusion transcript/control transcript [Log Number Ratio] in Blood or Tissue by Molecular genetics method"
* $LOINC#82905-1 "t(9;22)(q34.1;q11)(ABL1,BCR) fusion transcript/control transcript [Log Number Ratio] in Bone marrow by Molecular genetics method"
* $LOINC#52132-8 "t(9;22)(q34.1;q11)(ABL1,BCR) e1a2 fusion transcript/control transcript [# Ratio] in Blood or Tissue by Molecular genetics method"

ValueSet: BcrAbl1DetectionVS
Id: bcr-abl1-detection
Title: "BCR::ABL1 detected / not detected"
Description: "Coded qualitative BCR::ABL1 results: Not detected means undetectable at the sample's sensitivity (given by the control-gene copies)."
* ^experimental = false
* $SNOMED#260415000 "Not detected"
* $SNOMED#260373001 "Detected"

ValueSet: ImatinibTroughCodesVS
Id: imatinib-trough-codes
Title: "Imatinib trough level codes"
Description: "LOINC codes of an imatinib level that fhir-cml reads as a trough. LOINC 57844-3 (a laboratory's imatinib serum/plasma code) is read too but not listed here until its display is confirmed."
* ^experimental = false
* $LOINC#103609-4 "Imatinib [Mass/volume] in Serum or Plasma by LC/MS/MS --24 hours post dose"

ValueSet: CmlCarePlanStatusVS
Id: cml-care-plan-status
Title: "Statuses of a fhir-cml CarePlan"
Description: "A suggestion is written as draft; it becomes revoked when a later, different assessment supersedes it."
* ^experimental = false
* http://hl7.org/fhir/request-status#draft "Draft"
* http://hl7.org/fhir/request-status#revoked "Revoked"
