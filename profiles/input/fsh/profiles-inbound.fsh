// Profiles of what fhir-cml reads (docs/inbound.md). They are permissive where EHRs differ: they
// require only what the service cannot do without, and document every field it reads. A resource
// that does not conform is not rejected by the service; it becomes an issue in the output.

RuleSet: SubjectAndDate
* subject 1..1 MS
* subject only Reference(Patient)
* subject ^short = "The patient (relative, absolute or urn:uuid reference)"
* subject ^comment = "Without a subject the result cannot be tied to a patient (issue no-subject)."
* effective[x] 1..1 MS
* effective[x] only dateTime or Period or instant
* effective[x] ^short = "When the sample was taken"
* effective[x] ^comment = "effectiveDateTime, else effectivePeriod.start, else effectiveInstant. A result without a date is left out (missing-date); a date after the moment of reading is future-date."
* status MS
* status ^comment = "final, amended and corrected are used; an amended/corrected result replaces the one with the same identifier (or else the same code and date). preliminary, registered, cancelled, entered-in-error and unknown are left out with an issue."
* identifier MS
* identifier ^comment = "Matches an amended or corrected result to the result it replaces."

Invariant: bcr-1
Description: "A BCR::ABL1 result has a value, a data-absent reason or an interpretation"
Expression: "value.exists() or dataAbsentReason.exists() or interpretation.exists()"
Severity: #error

Invariant: bcr-2
Description: "A value has its content: the number of a quantity, both copy numbers of a ratio, a code or text, or the result as text"
Expression: "value.exists() implies ((value is string) or value.value.exists() or (value.numerator.value.exists() and value.denominator.value.exists()) or value.coding.exists() or value.text.exists())"
Severity: #error

Profile: BcrAbl1Result
Parent: Observation
Id: bcr-abl1-result
Title: "BCR::ABL1 quantification result"
Description: "A BCR::ABL1 RQ-PCR result as fhir-cml reads it: the ratio on the International Scale (LOINC 69380-4) or another BCR::ABL1 ratio or log reduction, with the control gene and its copies, the laboratory's conversion factor and the transcript type as components, and undetectable results in any of the shapes EHRs use."
* insert SubjectAndDate
* obeys bcr-1 and bcr-2
* code MS
* code from BcrAbl1ResultCodesVS (extensible)
* code ^short = "69380-4 (IS) | 55147-3, 46434-7 (not IS) | 50195-7, 82905-1 (log reduction) | 52132-8 (e1a2)"
* code ^comment = "A laboratory's own code is read once the site maps it to one of these in a ConceptMap (docs/inbound.md, Local codes and units); the translated coding is added next to the local one. LOINC may stand in any position of code.coding. 69380-4 is on the International Scale. 55147-3 and 46434-7 are used for decisions only with a conversion factor (component or the clinic's configuration), otherwise kept and set aside (not-on-is). For 50195-7/82905-1 the value is a log reduction: IS % = 100 / 10^value. 52132-8 (e1a2, p190) cannot be reported on the IS and is never used for milestones."
* category MS
* category ^comment = "Usually laboratory (http://terminology.hl7.org/CodeSystem/observation-category); not required."
* value[x] MS
* value[x] only Quantity or Ratio or CodeableConcept or string
* value[x] ^short = "IS % (Quantity), copies ratio (Ratio), Not detected (CodeableConcept), or the result as text (string)"
* value[x] ^comment = "valueQuantity in % (UCUM %), e.g. 0.08 %; the unit may be free text without a UCUM code (% IS, %IS, % (IS), or a spelling the site maps to UCUM in its ConceptMap); a comparator < or <= means not detected below that limit. valueString: one number with an optional comparator and unit, e.g. 0.05 %, < 0.0032 %, 0,05 % (decimal comma); anything else (two numbers, a range, words) is not read and says why. For the log-reduction codes the quantity is the log reduction. valueRatio: BCR::ABL1 copies / control-gene copies, IS % = numerator / denominator x 100. valueCodeableConcept: SNOMED CT 260415000 Not detected."
* valueCodeableConcept from BcrAbl1DetectionVS (extensible)
* interpretation MS
* interpretation ^comment = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation ND (not detected) or < (off scale low) marks an undetectable result."
* dataAbsentReason MS
* dataAbsentReason ^comment = "A data-absent reason (http://terminology.hl7.org/CodeSystem/data-absent-reason, or text only) whose text says not detected, undetectable or below the detection limit marks an undetectable result; other reasons mean no value. That CodeSystem has no code for below the detection limit: a comparator < on valueQuantity or interpretation < says it in code."
* specimen MS
* specimen ^comment = "Peripheral blood is expected; 82905-1 is the bone-marrow log reduction."
* component MS
* component ^slicing.discriminator.type = #pattern
* component ^slicing.discriminator.path = "code"
* component ^slicing.rules = #open
* component ^slicing.description = "By component code; other components are allowed and ignored."
* component contains
    abl1Copies 0..1 MS and
    gusbCopies 0..1 MS and
    conversionFactor 0..1 MS and
    transcriptType 0..1 MS
* component[abl1Copies].code = $CS_CML#abl1-copies
* component[abl1Copies].value[x] 1..1
* component[abl1Copies].value[x] only Quantity or integer
* component[abl1Copies] ^short = "ABL1 control-gene copies"
* component[abl1Copies] ^comment = "valueQuantity with unit {copies}, or valueInteger. The copies give the sensitivity of an undetectable result: at least 10,000 ABL1 copies are needed to call MR4 or deeper."
* component[gusbCopies].code = $CS_CML#gusb-copies
* component[gusbCopies].value[x] 1..1
* component[gusbCopies].value[x] only Quantity or integer
* component[gusbCopies] ^short = "GUSB control-gene copies"
* component[gusbCopies] ^comment = "valueQuantity with unit {copies}, or valueInteger; at least 24,000 GUSB copies are needed to call MR4 or deeper."
* component[conversionFactor].code = $CS_CML#conversion-factor
* component[conversionFactor].value[x] 1..1
* component[conversionFactor].value[x] only Quantity
* component[conversionFactor] ^short = "The laboratory's IS conversion factor (unit 1)"
* component[conversionFactor] ^comment = "IS % = local % x factor. Puts a not-IS result (55147-3, 46434-7) on the International Scale."
* component[transcriptType].code = $CS_CML#transcript-type
* component[transcriptType].value[x] 1..1
* component[transcriptType].value[x] only CodeableConcept or string
* component[transcriptType].valueCodeableConcept from BcrAbl1TranscriptVS (extensible)
* component[transcriptType] ^short = "e13a2 | e14a2 | e13a2+e14a2 | e1a2 | atypical (code or text)"
* component[transcriptType] ^comment = "Only e13a2/e14a2 (p210) can be reported on the IS. The transcript type may also be a separate Observation coded cml#transcript-type."

Invariant: trough-1
Description: "A trough level is a number with a unit (or the level as text)"
Expression: "value.exists() implies ((value is string) or (value.value.exists() and (value.code.exists() or value.unit.exists())))"
Severity: #error

Profile: ImatinibTrough
Parent: Observation
Id: imatinib-trough
Title: "Imatinib trough level"
Description: "An imatinib plasma level drawn immediately before the next dose, as fhir-cml reads it for therapeutic drug monitoring."
* insert SubjectAndDate
* obeys trough-1
* code MS
* code from ImatinibTroughCodesVS (extensible)
* code ^comment = "LOINC 103609-4 or 57844-3."
* effective[x] ^comment = "The moment the sample was drawn; with the dosing history it decides whether the level is at steady state (>= 29 days of therapy, >= 8 days without a dose change)."
* value[x] 1..1 MS
* value[x] only Quantity or string
* value[x] ^short = "The level: ng/mL, ug/L, mg/L, umol/L or nmol/L (UCUM, http://unitsofmeasure.org), or as text"
* value[x] ^comment = "Converted with UCUM; molar mass 493.6 g/mol. A free-text unit is read when it is one of these or the site maps it to UCUM; valueString is one number with its unit (e.g. 1 250 ng/mL is not read, 1250 ng/mL is). < 1000 ng/mL is subtherapeutic, >= 2000 ng/mL supratherapeutic."
* component MS
* component ^slicing.discriminator.type = #pattern
* component ^slicing.discriminator.path = "code"
* component ^slicing.rules = #open
* component contains
    timeSinceDose 0..1 MS and
    timeSinceDoseLocal 0..1 MS
* component[timeSinceDose].code = $LOINC#45359-7
* component[timeSinceDose].value[x] 1..1
* component[timeSinceDose].value[x] only Quantity
* component[timeSinceDose] ^short = "Hours since the last dose (LOINC 45359-7)"
* component[timeSinceDose] ^comment = "A trough is drawn 12 h (twice daily) or 24 h (once daily) after the last dose."
* component[timeSinceDoseLocal].code = $CS_CML#time-since-last-dose
* component[timeSinceDoseLocal].value[x] 1..1
* component[timeSinceDoseLocal].value[x] only Quantity
* component[timeSinceDoseLocal] ^short = "Hours since the last dose (local code)"

Invariant: kdm-1
Description: "A mutation analysis gives a finding: a value or the amino-acid change"
Expression: "value.exists() or component.where(code.coding.where(system = 'http://loinc.org' and code = '48005-3').exists()).exists()"
Severity: #error

Profile: KinaseDomainMutation
Parent: Observation
Id: kinase-domain-mutation
Title: "BCR::ABL1 kinase-domain mutation analysis"
Description: "A BCR::ABL1 kinase-domain mutation analysis in the shape of the HL7 Genomics Reporting variant Observation (LOINC 69548-6 with the amino-acid change and the gene studied as components), described here without depending on that guide; a coded finding naming the protein change (T315I) is accepted too."
* insert SubjectAndDate
* obeys kdm-1
* meta.profile ^comment = "May also claim the Genomics Reporting variant profile, http://hl7.org/fhir/uv/genomics-reporting/StructureDefinition/variant; fhir-cml reads the same shape without depending on that guide."
* code MS
* code = $LOINC#69548-6
* code ^short = "69548-6 Genetic variant assessment"
* value[x] MS
* value[x] only CodeableConcept
* value[x] ^short = "Present / Absent, or the protein change"
* value[x] ^comment = "LOINC LA9633-4 Present with the change in component 48005-3; LA9634-2 Absent or SNOMED CT 260415000 Not detected records a negative analysis. A value whose code or text is the protein change (T315I, M351T, ...) is read as that mutation."
* method MS
* component MS
* component ^slicing.discriminator.type = #pattern
* component ^slicing.discriminator.path = "code"
* component ^slicing.rules = #open
* component contains
    aminoAcidChange 0..1 MS and
    dnaChange 0..1 and
    geneStudied 0..1 MS
* component[aminoAcidChange].code = $LOINC#48005-3
* component[aminoAcidChange].value[x] 1..1
* component[aminoAcidChange].value[x] only CodeableConcept or string
* component[aminoAcidChange] ^short = "Amino acid change (p.HGVS), e.g. NP_005148.2:p.Thr315Ile or p.T315I"
* component[aminoAcidChange] ^comment = "valueCodeableConcept with system http://varnomen.hgvs.org, or text. T315I never allows imatinib escalation; M351T and L384M are dose-sensitive."
* component[dnaChange].code = $LOINC#48004-6
* component[dnaChange].value[x] 1..1
* component[dnaChange].value[x] only CodeableConcept or string
* component[dnaChange] ^short = "DNA change (c.HGVS), e.g. NM_005157.6:c.944C>T"
* component[geneStudied].code = $LOINC#48018-6
* component[geneStudied].value[x] 1..1
* component[geneStudied].value[x] only CodeableConcept
* component[geneStudied] ^short = "Gene studied: HGNC:76 ABL1 (system http://www.genenames.org/geneId)"

Profile: TkiMedicationStatement
Parent: MedicationStatement
Id: tki-medication-statement
Title: "TKI MedicationStatement"
Description: "A statement of tyrosine kinase inhibitor therapy as fhir-cml reads it. Several statements make the course: a later statement for the same drug at another dose is a dose change, for another drug a switch; time between statements is a gap."
* status MS
* status ^comment = "active, completed, stopped and on-hold are intake; entered-in-error, not-taken and intended are not (an issue says so)."
* statusReason MS
* statusReason from TkiStopReasonVS (extensible)
* statusReason ^comment = "Codes of tki-stop-reason, or text naming treatment-free remission, intolerance or adverse events, resistance, failure or progression. A stop for TFR starts the post-stop monitoring schedule."
* medication[x] MS
* medication[x] from TkiVS (extensible)
* medication[x] ^short = "The TKI: RxNorm, ATC, or a referenced/contained Medication"
* medication[x] ^comment = "medicationCodeableConcept, or a reference to a (contained) Medication with the code. Without a known code, the text or display naming the drug or its brand is used as a last resort (an issue says so)."
* subject MS
* subject only Reference(Patient)
* effective[x] MS
* effective[x] ^comment = "effectivePeriod.start/end, or effectiveDateTime as the start. Therapy time runs from the start of the first-line TKI; a statement without a start gives the issue no-therapy-start."
* dateAsserted MS
* dateAsserted ^comment = "Stands in for the missing end of a stopped statement (an issue says so)."
* dosage MS
* dosage.timing MS
* dosage.timing ^comment = "timing.repeat frequency/period/periodUnit (e.g. 2 per 1 d), or timing.code QD/BID/TID (http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation)."
* dosage.doseAndRate MS
* dosage.doseAndRate.dose[x] MS
* dosage.doseAndRate.dose[x] ^comment = "doseQuantity in mg, times the frequency per day: 400 mg twice daily is 800 mg/day. A tablet count is converted when the drug code gives the strength."

Profile: TkiMedicationRequest
Parent: MedicationRequest
Id: tki-medication-request
Title: "TKI MedicationRequest"
Description: "An order of tyrosine kinase inhibitor therapy as fhir-cml reads it (docs/inbound.md, TKI therapy from orders and supplies): a US Core MedicationRequest conforms as it is. Orders make the same course as statements: renewals at the same dose are one course, another dose is a new segment, a gap longer than 30 days after the supply ran out is an interruption; a MedicationStatement of the same drug and period takes precedence."
* status MS
* status ^comment = "active, completed, stopped, on-hold and unknown are intake; cancelled, entered-in-error and draft are left out (status-ignored). A completed or stopped order without an end ends when its supply ran out."
* intent MS
* intent ^comment = "An order is read: order, original-order, reflex-order, filler-order, instance-order. A proposal or plan is left out (status-ignored)."
* doNotPerform ^comment = "An order not to give the drug is left out."
* statusReason MS
* statusReason from TkiStopReasonVS (extensible)
* statusReason ^comment = "As for a statement: codes of tki-stop-reason, or text naming treatment-free remission, intolerance, resistance or a dose change."
* medication[x] MS
* medication[x] from TkiVS (extensible)
* medication[x] ^short = "The TKI: RxNorm (ingredient or clinical drug), ATC, or a referenced/contained Medication"
* medication[x] ^comment = "As for a statement. A tablet count is converted to mg when the RxNorm clinical drug gives the strength; a site's own code is read once its ConceptMap maps it."
* subject MS
* subject only Reference(Patient)
* authoredOn MS
* authoredOn ^comment = "The start when neither dosageInstruction.timing.repeat.boundsPeriod.start nor dispenseRequest.validityPeriod.start is given."
* dosageInstruction MS
* dosageInstruction.timing MS
* dosageInstruction.timing ^comment = "timing.repeat.boundsPeriod gives the start and end of the course; frequency/period/periodUnit or timing.code QD/BID/TID the doses per day."
* dosageInstruction.doseAndRate MS
* dosageInstruction.doseAndRate.dose[x] MS
* dosageInstruction.doseAndRate.dose[x] ^comment = "doseQuantity in mg (or a tablet count with a clinical-drug code), times the frequency per day."
* dispenseRequest MS
* dispenseRequest.validityPeriod MS
* dispenseRequest.validityPeriod ^comment = "Its start stands in for a missing boundsPeriod.start; its end for a missing supply end."
* dispenseRequest.expectedSupplyDuration MS
* dispenseRequest.expectedSupplyDuration ^comment = "With numberOfRepeatsAllowed, when the supply runs out: start + duration x (1 + repeats)."
* dispenseRequest.numberOfRepeatsAllowed MS
