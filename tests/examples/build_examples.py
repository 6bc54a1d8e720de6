"""The source of examples/*.json: synthetic CML patients as FHIR R4 transaction Bundles.

Every patient is fictional. Run ``python -m tests.examples.build_examples`` from the repository
root after changing a patient here; ``test_examples.py`` checks that the committed files match.
The expected readings for each patient are in ``expected_readings.json`` (derived by hand from
clinical-rules.md; see examples/README.md).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from fhir_cml import conformance
from fhir_cml.fhir import terminology
from fhir_cml.fhir.canonical import (
    ATC,
    BASE,
    CS_CML,
    CS_STOP_REASON,
    CS_TRANSCRIPT,
    GENOMICS_VARIANT_PROFILE,
    HGNC,
    HGVS,
    LOINC,
    OBSERVATION_CATEGORY,
    PROFILE_BCR_ABL1,
    PROFILE_MUTATION,
    PROFILE_TKI_STATEMENT,
    PROFILE_TROUGH,
    RXNORM,
    SNOMED,
    UCUM,
    V3_INTERPRETATION,
    V3_TIMING,
)
from fhir_cml.fhir.inbound.medications import CYP3A4_ATC, TKI_ATC
from fhir_cml.fhir.terminology import atc_display

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
V3_ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
MED_STATEMENT_CATEGORY = "http://terminology.hl7.org/CodeSystem/medication-statement-category"
AE_SEVERITY = "http://terminology.hl7.org/CodeSystem/adverse-event-severity"
AE_OUTCOME = "http://terminology.hl7.org/CodeSystem/adverse-event-outcome"
AE_SERIOUSNESS = "http://terminology.hl7.org/CodeSystem/adverse-event-seriousness"
MRN = "https://hospital.example.org/fhir/identifier/mrn"
MED_REQUEST_CATEGORY = "http://terminology.hl7.org/CodeSystem/medicationrequest-category"
TKI_MEDICATION_REQUEST = f"{BASE}/StructureDefinition/tki-medication-request"
US_CORE_MEDICATION_REQUEST = (
    "http://hl7.org/fhir/us/core/StructureDefinition/us-core-medicationrequest"
)
LOCAL_LAB = "https://lab.example.org/fhir/CodeSystem/molecular-tests"
PHARMACY = "Outpatient Pharmacy, Example University Hospital"
ACCESSION = "https://lab.example.org/fhir/identifier/accession"

MOLECULAR_LAB = "Molecular Haematology Laboratory, Example University Hospital"
CORE_LAB = "Haematology Laboratory, Example University Hospital"
CYTOGENETICS_LAB = "Cytogenetics Laboratory, Example University Hospital"
PHARMACOLOGY_LAB = "Clinical Pharmacology Laboratory, Example University Hospital"
HAEMATOLOGY_CLINIC = "CML Clinic, Department of Haematology, Example University Hospital"
AS_OF = date(2025, 6, 30)

BCR_ABL1_IS = "69380-4"
BCR_ABL1_LOCAL = "55147-3"
# LOINC code, UCUM code, unit as written; displays come from shown() (none where unconfirmed).
LABS = {
    "wbc": ("6690-2", "10*9/L", "10^9/L"),
    "platelets": ("777-3", "10*9/L", "10^9/L"),
    "basophils": ("706-2", "%", "%"),
    "blasts": ("709-6", "%", "%"),
    "spleen": ("32489-7", "cm", "cm"),
}
LAB_TEXT = {
    "wbc": "White blood cell count",
    "platelets": "Platelet count",
    "basophils": "Basophils (%)",
    "blasts": "Blasts in peripheral blood (%)",
    "spleen": "Spleen below costal margin",
}
# Displays of the HL7 code systems used here, as in the FHIR R4 code systems (checked by
# tests/unit/test_displays.py against the R4 definitions).
HL7_DISPLAYS: dict[tuple[str, str], str] = {
    (OBSERVATION_CATEGORY, "laboratory"): "Laboratory",
    (OBSERVATION_CATEGORY, "exam"): "Exam",
    (OBSERVATION_CATEGORY, "survey"): "Survey",
    (V3_INTERPRETATION, "ND"): "Not detected",
    (V3_TIMING, "QD"): "QD",
    (V3_TIMING, "BID"): "BID",
    (V3_ACT_REASON, "HTEST"): "test health data",
    (V2_0074, "GE"): "Genetics",
    (CONDITION_CLINICAL, "active"): "Active",
    (CONDITION_VERIFICATION, "confirmed"): "Confirmed",
    (CONDITION_CATEGORY, "problem-list-item"): "Problem List Item",
    (MED_STATEMENT_CATEGORY, "community"): "Community",
    (MED_REQUEST_CATEGORY, "community"): "Community",
    (AE_SEVERITY, "mild"): "Mild",
    (AE_SEVERITY, "moderate"): "Moderate",
    (AE_OUTCOME, "ongoing"): "Ongoing",
    (AE_OUTCOME, "resolved"): "Resolved",
    (AE_SERIOUSNESS, "Non-serious"): "Non-serious",
}
ATC_NAMES = {
    code: str(name)
    for code, name in {**TKI_ATC, **CYP3A4_ATC}.items()
    if atc_display(code, str(name))
}


def shown(system: str, code: str) -> str | None:
    """The display a coding carries: its source's (the project's CodeSystems, the FHIR R4 code
    systems, the confirmed external displays of fhir_cml.fhir.terminology, the ATC names of the
    drug tables), or none where no source confirms one."""
    if system.startswith(f"{BASE}/CodeSystem/"):
        concepts = conformance.by_url(system)["concept"]
        return str(next(c["display"] for c in concepts if c["code"] == code))
    if (system, code) in HL7_DISPLAYS:
        return HL7_DISPLAYS[(system, code)]
    if system == ATC:
        return ATC_NAMES[code]
    return terminology.display(system, code) if terminology.has_display(system, code) else None


def _coding(system: str, code: str) -> dict[str, Any]:
    coding = {"system": system, "code": code}
    display = shown(system, code)
    return coding | {"display": display} if display else coding


def _cc(system: str, code: str, text: str | None = None) -> dict[str, Any]:
    concept: dict[str, Any] = {"coding": [_coding(system, code)]}
    if text:
        concept["text"] = text
    return concept


IMATINIB_400_TABLET = {
    "coding": [
        _coding(RXNORM, "403879"),
        _coding(ATC, "L01EA01"),
    ],
    "text": "Imatinib 400 mg tablet",
}
IMATINIB = {
    "coding": [
        _coding(RXNORM, "282388"),
        _coding(ATC, "L01EA01"),
    ],
    "text": "Imatinib (100 mg and 400 mg tablets)",
}
CLARITHROMYCIN = {
    "coding": [
        _coding(RXNORM, "21212"),
        _coding(ATC, "J01FA09"),
    ],
    "text": "Clarithromycin 500 mg tablet",
}
ND = "not-detected"


def _d(text: str) -> date:
    return date.fromisoformat(text)


def _time(day: date, clock: str) -> str:
    """A local date-time; the offset is Central European (summer time April to October)."""
    offset = "+02:00" if 4 <= day.month <= 10 else "+01:00"
    return f"{day.isoformat()}T{clock}:00{offset}"


def _issued(day: date, days: int = 3) -> str:
    reported = min(day + timedelta(days=days), AS_OF - timedelta(days=1))
    return _time(reported, "14:20")


def _quantity(value: float, unit: str, code: str, comparator: str | None = None) -> dict[str, Any]:
    quantity: dict[str, Any] = {"value": value, "unit": unit, "system": UCUM, "code": code}
    if comparator:
        quantity = {"comparator": comparator, **quantity}
    return quantity


def _laboratory() -> list[dict[str, Any]]:
    return [_cc(OBSERVATION_CATEGORY, "laboratory")]


@dataclass
class Patient:
    """One synthetic patient: the resources of one Bundle, in order."""

    slug: str  # the Patient id, e.g. cml-optimal
    file: str
    resources: list[dict[str, Any]] = field(default_factory=list)
    _accession: int = 0

    @property
    def ref(self) -> dict[str, str]:
        return {"reference": f"Patient/{self.slug}"}

    def add(self, resource: dict[str, Any]) -> dict[str, Any]:
        ids = {(r["resourceType"], r["id"]) for r in self.resources}
        assert (resource["resourceType"], resource["id"]) not in ids, resource["id"]
        self.resources.append(resource)
        return resource

    def accession(self, day: date) -> list[dict[str, str]]:
        self._accession += 1
        number = f"{self.slug.upper().replace('-', '')[:8]}-{day:%y%m%d}-{self._accession:02d}"
        return [{"system": ACCESSION, "value": number}]

    # --- Patient and diagnosis ---------------------------------------------------------------
    def patient(self, given: str, family: str, gender: str, birth: str, mrn: str) -> None:
        self.add(
            {
                "resourceType": "Patient",
                "id": self.slug,
                "meta": {"security": [_coding(V3_ACT_REASON, "HTEST")]},
                "identifier": [{"system": MRN, "value": mrn}],
                "active": True,
                "name": [{"use": "official", "family": family, "given": [given]}],
                "gender": gender,
                "birthDate": birth,
            }
        )

    def condition(self, onset: str, phase: str = "chronic") -> None:
        code = {"chronic": "278177007", "accelerated": "278179005"}[phase]
        self.add(
            {
                "resourceType": "Condition",
                "id": f"{self.slug}-cml",
                "clinicalStatus": _cc(CONDITION_CLINICAL, "active"),
                "verificationStatus": _cc(CONDITION_VERIFICATION, "confirmed"),
                "category": [_cc(CONDITION_CATEGORY, "problem-list-item")],
                "code": {
                    "coding": [_coding(SNOMED, "92818009"), _coding(ICD10CM, "C92.10")],
                    "text": "Chronic myeloid leukaemia, BCR::ABL1 positive",
                },
                "subject": self.ref,
                "onsetDateTime": onset,
                "recordedDate": onset,
                "stage": [{"summary": _cc(SNOMED, code)}],
            }
        )

    # --- BCR::ABL1 ---------------------------------------------------------------------------
    def pcr(
        self,
        day: str,
        value: float | str,
        abl1: int,
        *,
        local_cf: float | None = None,
        local: bool = False,
        transcript: str | None = None,
        limit: float | None = None,
        note: str | None = None,
    ) -> None:
        """A BCR::ABL1 result: ``value`` in % (IS unless ``local``), or ND (not detected).

        ``limit`` reports an undetectable result as ``< limit %`` instead of a coded finding.
        """
        when = _d(day)
        code = BCR_ABL1_LOCAL if local else BCR_ABL1_IS
        text = "BCR::ABL1 (p210) / ABL1" + ("" if local else ", International Scale")
        obs: dict[str, Any] = {
            "resourceType": "Observation",
            "id": f"{self.slug}-pcr-{day}",
            "meta": {"profile": [PROFILE_BCR_ABL1]},
            "identifier": self.accession(when),
            "status": "final",
            "category": _laboratory(),
            "code": {"coding": [_coding(LOINC, code)], "text": text},
            "subject": self.ref,
            "effectiveDateTime": _time(when, "08:40"),
            "issued": _issued(when, 4),
            "performer": [{"display": MOLECULAR_LAB}],
        }
        if value == ND and limit is not None:
            obs["valueQuantity"] = _quantity(limit, "%", "%", comparator="<")
            obs["interpretation"] = [_cc(V3_INTERPRETATION, "ND")]
        elif value == ND:
            obs["valueCodeableConcept"] = _cc(SNOMED, "260415000")
            obs["interpretation"] = [_cc(V3_INTERPRETATION, "ND")]
        else:
            assert isinstance(value, float | int)
            obs["valueQuantity"] = _quantity(value, "%", "%")
        obs["method"] = {"text": "RT-qPCR (EAC protocol), peripheral blood"}
        obs["specimen"] = {"display": "Peripheral blood, EDTA"}
        components: list[dict[str, Any]] = [
            {
                "code": _cc(CS_CML, "abl1-copies"),
                "valueQuantity": _quantity(abl1, "copies", "{copies}"),
            }
        ]
        if local_cf is not None:
            components.append(
                {
                    "code": _cc(CS_CML, "conversion-factor"),
                    "valueQuantity": _quantity(local_cf, "1", "1"),
                }
            )
        if transcript:
            components.append(
                {
                    "code": _cc(CS_CML, "transcript-type"),
                    "valueCodeableConcept": _cc(CS_TRANSCRIPT, transcript),
                }
            )
        obs["component"] = components
        if note:
            obs["note"] = [{"text": note}]
        self.add(obs)

    def pcrs(self, rows: list[tuple[str, float | str, int]]) -> None:
        for day, value, abl1 in rows:
            self.pcr(day, value, abl1)

    # --- Other laboratory results ------------------------------------------------------------
    def lab(self, day: str, kind: str, value: float) -> None:
        when = _d(day)
        code, ucum, unit = LABS[kind]
        spleen = kind == "spleen"
        self.add(
            {
                "resourceType": "Observation",
                "id": f"{self.slug}-{kind}-{day}",
                "status": "final",
                "category": [_cc(OBSERVATION_CATEGORY, "exam")] if spleen else _laboratory(),
                "code": {"coding": [_coding(LOINC, code)], "text": LAB_TEXT[kind]},
                "subject": self.ref,
                "effectiveDateTime": _time(when, "09:15" if spleen else "08:40"),
                **({} if spleen else {"issued": _time(when, "11:05")}),
                "performer": [{"display": HAEMATOLOGY_CLINIC if spleen else CORE_LAB}],
                "valueQuantity": _quantity(value, unit, ucum),
            }
        )

    def counts(
        self, day: str, wbc: float, platelets: float, basophils: float, blasts: float, spleen: float
    ) -> None:
        self.lab(day, "wbc", wbc)
        self.lab(day, "platelets", platelets)
        self.lab(day, "basophils", basophils)
        self.lab(day, "blasts", blasts)
        self.lab(day, "spleen", spleen)

    def hematologic_response(self, day: str, complete: bool) -> None:
        when = _d(day)
        self.add(
            {
                "resourceType": "Observation",
                "id": f"{self.slug}-chr-{day}",
                "status": "final",
                "category": [_cc(OBSERVATION_CATEGORY, "exam")],
                "code": _cc(CS_CML, "hematologic-response"),
                "subject": self.ref,
                "effectiveDateTime": _time(when, "09:30"),
                "performer": [{"display": HAEMATOLOGY_CLINIC}],
                "valueBoolean": complete,
            }
        )

    def karyotype(
        self,
        day: str,
        positive: int,
        counted: int,
        iscn: str,
        *,
        high_risk_aca: bool = False,
        in_ph_positive: bool = False,
    ) -> None:
        when = _d(day)
        self.add(
            {
                "resourceType": "Observation",
                "id": f"{self.slug}-karyotype-{day}",
                "identifier": self.accession(when),
                "status": "final",
                "category": [*_laboratory(), _cc(V2_0074, "GE")],
                "code": _cc(CS_CML, "ph-positive-metaphases", "Ph+ metaphases, bone marrow"),
                "subject": self.ref,
                "effectiveDateTime": _time(when, "10:10"),
                "issued": _issued(when, 14),
                "performer": [{"display": CYTOGENETICS_LAB}],
                "valueQuantity": _quantity(round(100 * positive / counted, 1), "%", "%"),
                "method": {"text": "G-banded chromosome analysis, bone marrow aspirate"},
                "specimen": {"display": "Bone marrow aspirate, heparin"},
                "note": [{"text": f"Karyotype: {iscn}"}],
                "component": [
                    {
                        "code": _cc(CS_CML, "metaphases-counted"),
                        "valueInteger": counted,
                    },
                    {
                        "code": _cc(CS_CML, "high-risk-aca"),
                        "valueBoolean": high_risk_aca,
                    },
                    {
                        "code": _cc(CS_CML, "clonal-abnormality-ph-positive"),
                        "valueBoolean": in_ph_positive,
                    },
                ],
            }
        )

    def trough(self, day: str, ng_ml: float, hours: float, dose_note: str) -> None:
        when = _d(day)
        self.add(
            {
                "resourceType": "Observation",
                "id": f"{self.slug}-trough-{day}",
                "meta": {"profile": [PROFILE_TROUGH]},
                "identifier": self.accession(when),
                "status": "final",
                "category": _laboratory(),
                "code": {
                    "coding": [_coding(LOINC, "103609-4")],
                    "text": "Imatinib trough level (LC-MS/MS)",
                },
                "subject": self.ref,
                "effectiveDateTime": _time(when, "08:30"),
                "issued": _issued(when, 2),
                "performer": [{"display": PHARMACOLOGY_LAB}],
                "valueQuantity": _quantity(ng_ml, "ng/mL", "ng/mL"),
                "method": {"text": "LC-MS/MS"},
                "specimen": {"display": "Plasma, K2-EDTA"},
                "note": [{"text": dose_note}],
                "component": [
                    {
                        "code": _cc(LOINC, "45359-7"),
                        "valueQuantity": _quantity(hours, "h", "h"),
                    }
                ],
            }
        )

    def mutation(
        self,
        day: str,
        reported: str,
        *,
        protein: str | None = None,
        dna: str | None = None,
        vaf: float | None = None,
    ) -> None:
        """A BCR::ABL1 kinase-domain analysis (HL7 Genomics Reporting variant shape)."""
        when = _d(day)
        present = protein is not None
        suffix = protein.split(".")[-1] if protein else "negative"
        components: list[dict[str, Any]] = [
            {
                "code": _cc(LOINC, "48018-6"),
                "valueCodeableConcept": _cc(HGNC, "HGNC:76"),
            }
        ]
        if present:
            assert dna is not None
            assert vaf is not None
            components += [
                {
                    "code": _cc(LOINC, "48004-6"),
                    "valueCodeableConcept": _cc(HGVS, dna),
                },
                {
                    "code": _cc(LOINC, "48005-3"),
                    "valueCodeableConcept": _cc(HGVS, protein),
                },
                {
                    "code": _cc(LOINC, "81258-6"),
                    "valueQuantity": _quantity(
                        vaf, "relative frequency of a particular allele", "1"
                    ),
                },
            ]
        self.add(
            {
                "resourceType": "Observation",
                "id": f"{self.slug}-kd-mutation-{suffix.lower()}-{day}",
                "meta": {"profile": [PROFILE_MUTATION, GENOMICS_VARIANT_PROFILE]},
                "identifier": self.accession(when),
                "status": "final",
                "category": [*_laboratory(), _cc(V2_0074, "GE")],
                "code": _cc(LOINC, "69548-6"),
                "subject": self.ref,
                "effectiveDateTime": _time(when, "08:40"),
                "issued": _time(_d(reported), "15:00"),
                "performer": [{"display": MOLECULAR_LAB}],
                "valueCodeableConcept": _cc(LOINC, "LA9633-4", "Present")
                if present
                else _cc(LOINC, "LA9634-2", "Absent"),
                "method": {
                    "text": "Sanger sequencing of the BCR::ABL1 kinase domain (codons 221-500)"
                },
                "specimen": {"display": "Peripheral blood, EDTA"},
                "note": [
                    {
                        "text": "BCR::ABL1 kinase-domain mutation analysis: "
                        + (f"{protein} detected." if present else "no mutation detected.")
                    }
                ],
                "component": components,
            }
        )

    def adherence(self, day: str) -> None:
        when = _d(day)
        self.add(
            {
                "resourceType": "Observation",
                "id": f"{self.slug}-adherence-{day}",
                "status": "final",
                "category": [_cc(OBSERVATION_CATEGORY, "survey")],
                "code": _cc(LOINC, "71799-1"),
                "subject": self.ref,
                "effectiveDateTime": _time(when, "10:00"),
                "performer": [{"display": HAEMATOLOGY_CLINIC}],
                "valueCodeableConcept": _cc(SNOMED, "1156699004"),
                "note": [
                    {
                        "text": "Pharmacy refill records complete; patient reports no missed doses "
                        "in the last 4 weeks."
                    }
                ],
            }
        )

    # --- Medication --------------------------------------------------------------------------
    def tki(
        self,
        sid: str,
        mg: int,
        start: str,
        *,
        end: str | None = None,
        status: str = "active",
        reason: tuple[str, str, str] | None = None,
        asserted: str | None = None,
    ) -> None:
        medication = IMATINIB_400_TABLET if mg == 400 else IMATINIB
        period = {"start": start} | ({"end": end} if end else {})
        statement: dict[str, Any] = {
            "resourceType": "MedicationStatement",
            "id": f"{self.slug}-{sid}",
            "meta": {"profile": [PROFILE_TKI_STATEMENT]},
            "status": status,
        }
        if reason:
            code, text = reason
            statement["statusReason"] = [_cc(CS_STOP_REASON, code, text)]
        statement |= {
            "category": _cc(MED_STATEMENT_CATEGORY, "community"),
            "medicationCodeableConcept": medication,
            "subject": self.ref,
            "effectivePeriod": period,
            "dateAsserted": asserted or (end or start),
            "informationSource": {"display": HAEMATOLOGY_CLINIC},
            "reasonReference": [{"reference": f"Condition/{self.slug}-cml"}],
            "dosage": [
                {
                    "text": f"{mg} mg by mouth once daily with food",
                    "timing": {
                        "repeat": {"frequency": 1, "period": 1, "periodUnit": "d"},
                        "code": _cc(V3_TIMING, "QD"),
                    },
                    "route": _cc(SNOMED, "26643006"),
                    "doseAndRate": [{"doseQuantity": _quantity(mg, "mg", "mg")}],
                }
            ],
        }
        self.add(statement)

    def clarithromycin(self, start: str, end: str) -> None:
        self.add(
            {
                "resourceType": "MedicationStatement",
                "id": f"{self.slug}-clarithromycin",
                "status": "active",
                "category": _cc(MED_STATEMENT_CATEGORY, "community"),
                "medicationCodeableConcept": CLARITHROMYCIN,
                "subject": self.ref,
                "effectivePeriod": {"start": start, "end": end},
                "dateAsserted": start,
                "informationSource": {"display": "General practitioner (external prescription)"},
                "reasonCode": [{"text": "Community-acquired pneumonia"}],
                "dosage": [
                    {
                        "text": "500 mg by mouth twice daily for 14 days",
                        "timing": {
                            "repeat": {"frequency": 2, "period": 1, "periodUnit": "d"},
                            "code": _cc(V3_TIMING, "BID"),
                        },
                        "route": _cc(SNOMED, "26643006"),
                        "doseAndRate": [{"doseQuantity": _quantity(500, "mg", "mg")}],
                    }
                ],
            }
        )

    def adverse_event(
        self,
        sid: str,
        day: str,
        event: tuple[str, str],
        severity: str,
        outcome: str,
        suspect: str,
    ) -> None:
        code, text = event
        self.add(
            {
                "resourceType": "AdverseEvent",
                "id": f"{self.slug}-ae-{sid}",
                "actuality": "actual",
                "event": _cc(SNOMED, code, text),
                "subject": self.ref,
                "date": day,
                "recordedDate": day,
                "seriousness": _cc(AE_SERIOUSNESS, "Non-serious"),
                "severity": _cc(AE_SEVERITY, severity),
                "outcome": _cc(AE_OUTCOME, outcome),
                "suspectEntity": [
                    {"instance": {"reference": f"MedicationStatement/{self.slug}-{suspect}"}}
                ],
            }
        )

    # --- Bundle ------------------------------------------------------------------------------
    # --- US Core orders and supplies ---------------------------------------------------------
    def order(
        self,
        sid: str,
        drug: tuple[str, str, str],
        authored: str,
        *,
        status: str = "completed",
        days: int = 90,
        reason: str | None = None,
    ) -> None:
        """A US Core MedicationRequest: one tablet daily of the RxNorm clinical drug ``drug``
        (code, display, text), a supply of ``days`` days from ``authored``."""
        code, display, text = drug
        request: dict[str, Any] = {
            "resourceType": "MedicationRequest",
            "id": f"{self.slug}-{sid}",
            "meta": {"profile": [TKI_MEDICATION_REQUEST, US_CORE_MEDICATION_REQUEST]},
            "status": status,
        }
        if reason:
            request["statusReason"] = {"text": reason}
        request |= {
            "intent": "order",
            "category": [
                _cc(MED_REQUEST_CATEGORY, "community"),
            ],
            "medicationCodeableConcept": {
                "coding": [{"system": RXNORM, "code": code, "display": display}],
                "text": text,
            },
            "subject": self.ref,
            "authoredOn": authored,
            "requester": {"display": HAEMATOLOGY_CLINIC},
            "reasonReference": [{"reference": f"Condition/{self.slug}-cml"}],
            "dosageInstruction": [
                {
                    "text": f"{text}: 1 tablet by mouth once daily",
                    "timing": {
                        "repeat": {
                            "boundsPeriod": {"start": authored},
                            "frequency": 1,
                            "period": 1,
                            "periodUnit": "d",
                        }
                    },
                    "route": _cc(SNOMED, "26643006"),
                    "doseAndRate": [{"doseQuantity": _quantity(1, "tablet", "{tbl}")}],
                }
            ],
            "dispenseRequest": {
                "quantity": _quantity(days, "tablet", "{tbl}"),
                "expectedSupplyDuration": _quantity(days, "days", "d"),
                "numberOfRepeatsAllowed": 0,
            },
        }
        self.add(request)

    def dispense(self, sid: str, handed_over: str, mg: int, days: int) -> None:
        """A MedicationDispense of imatinib tablets for ``days`` days at ``mg`` mg once daily."""
        medication = IMATINIB_400_TABLET if mg == 400 else IMATINIB
        self.add(
            {
                "resourceType": "MedicationDispense",
                "id": f"{self.slug}-{sid}",
                "status": "completed",
                "medicationCodeableConcept": medication,
                "subject": self.ref,
                "performer": [{"actor": {"display": PHARMACY}}],
                "quantity": _quantity(days, "tablet", "{tbl}"),
                "daysSupply": _quantity(days, "days", "d"),
                "whenHandedOver": _time(_d(handed_over), "15:20"),
                "dosageInstruction": [
                    {
                        "text": f"{mg} mg by mouth once daily with food",
                        "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
                        "doseAndRate": [{"doseQuantity": _quantity(mg, "mg", "mg")}],
                    }
                ],
            }
        )

    def as_local_laboratory(self) -> None:
        """The molecular laboratory's own codes and text values, as it sends them (the site's
        ConceptMap, examples/conceptmaps/, maps the codes and the unit)."""
        for res in self.resources:
            codes = {x.get("code") for x in res.get("code", {}).get("coding", [])}
            if res["resourceType"] != "Observation" or BCR_ABL1_IS not in codes:
                continue
            res["meta"] = {"profile": [PROFILE_BCR_ABL1]}
            res["code"] = {
                "coding": [{"system": LOCAL_LAB, "code": "BCRABL-IS", "display": "BCR-ABL1 IS"}],
                "text": "BCR-ABL1 p210 quantitative (IS)",
            }
            quantity = res.pop("valueQuantity", None)
            if quantity is not None:
                number = f"{quantity['value']}".replace(".", ",")
                sign = f"{quantity['comparator']} " if "comparator" in quantity else ""
                res["valueString"] = f"{sign}{number} %IS"
            for comp in res.get("component", []):
                if _cc(CS_CML, "abl1-copies") == comp["code"]:
                    comp["code"] = {
                        "coding": [
                            {"system": LOCAL_LAB, "code": "ABL1-CN", "display": "ABL1 copies"}
                        ]
                    }
                    comp["valueQuantity"] = {
                        "value": comp["valueQuantity"]["value"],
                        "unit": "Kopien",
                    }

    def bundle(self) -> dict[str, Any]:
        entries = []
        for resource in self.resources:
            path = f"{resource['resourceType']}/{resource['id']}"
            full_url = f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{BASE}/examples/{path}')}"
            entries.append(
                {
                    "fullUrl": full_url,
                    "resource": resource,
                    "request": {"method": "PUT", "url": path},
                }
            )
        return {
            "resourceType": "Bundle",
            "id": f"{self.slug}-bundle",
            "type": "transaction",
            "entry": entries,
        }


TFR_STOP = ("tfr", "Stopped to attempt treatment-free remission")
DOSE_CHANGE = ("dose-change", "Dose changed")


def optimal() -> Patient:
    """Imatinib 400 mg since Jan 2022; 3/6/12-month milestones met, MMR at 12 months, now MR4."""
    p = Patient("cml-optimal", "01-optimal-responder.json")
    p.patient("Ima", "Optimal", "female", "1968-12-01", "EX-000101")
    p.condition("2021-12-20")
    p.counts("2022-01-03", wbc=64, platelets=320, basophils=3, blasts=1, spleen=0)
    p.pcr("2022-01-03", 58.0, 41000, transcript="e13a2")
    p.tki("imatinib", 400, "2022-01-10", asserted="2025-06-16")
    p.pcrs(
        [
            ("2022-04-04", 4.2, 85000),
            ("2022-07-04", 0.62, 91000),
            ("2022-12-27", 0.075, 78000),
            ("2023-03-27", 0.041, 66000),
            ("2023-06-26", 0.028, 72000),
            ("2023-09-25", 0.018, 58000),
            ("2023-12-18", 0.012, 63000),
            ("2024-03-18", 0.0091, 48000),
            ("2024-06-17", 0.0064, 55000),
            ("2024-09-16", 0.0072, 61000),
            ("2024-12-16", 0.0049, 58000),
            ("2025-03-17", 0.0062, 52000),
            ("2025-06-16", 0.0058, 61000),
        ]
    )
    return p


def warning_6m() -> Patient:
    """Imatinib since Dec 2024; 6.8 % at 3 months, 3.5 % at 6 months; a trough drawn 3 h post-dose."""
    p = Patient("cml-warning-6m", "02-warning-6-months.json")
    p.patient("Wanda", "Warning", "female", "1979-05-14", "EX-000102")
    p.condition("2024-11-18")
    p.pcr("2024-11-25", 45.0, 38000, transcript="e13a2")
    p.tki("imatinib", 400, "2024-12-02", asserted="2025-05-26")
    p.pcrs([("2025-02-24", 6.8, 74000), ("2025-05-26", 3.5, 81000)])
    p.trough(
        "2025-05-26",
        2650,
        3,
        "Sample drawn 3 hours after the morning dose (patient took the dose before attending).",
    )
    return p


def t315i() -> Patient:
    """Imatinib since Jun 2024; 3.1 % at 12 months with T315I: failure, switch, never escalate."""
    p = Patient("cml-t315i", "03-failure-t315i.json")
    p.patient("Tom", "Threefifteen", "male", "1958-09-22", "EX-000103")
    p.condition("2024-06-03")
    p.pcr("2024-06-10", 72.0, 44000, transcript="e14a2")
    p.tki("imatinib", 400, "2024-06-17", asserted="2025-06-02")
    p.pcrs([("2024-09-09", 12.0, 69000), ("2024-12-09", 6.0, 83000), ("2025-06-02", 3.1, 98000)])
    p.mutation(
        "2025-06-02",
        "2025-06-20",
        protein="NP_005148.2:p.Thr315Ile",
        dna="NM_005157.6:c.944C>T",
        vaf=0.38,
    )
    return p


def low_trough() -> Patient:
    """Imatinib since Dec 2024; 13 % at 6 months, trough 612 ng/mL at steady state, adherent."""
    p = Patient("cml-low-trough", "04-failure-low-trough.json")
    p.patient("Lou", "Trough", "male", "1966-02-27", "EX-000104")
    p.condition("2024-12-02")
    p.pcr("2024-12-09", 80.0, 36000, transcript="e13a2")
    p.tki("imatinib", 400, "2024-12-16", asserted="2025-06-09")
    p.pcrs([("2025-03-10", 22.0, 57000), ("2025-06-09", 13.0, 64000)])
    p.trough(
        "2025-06-09",
        612,
        24,
        "Pre-dose sample; imatinib 400 mg once daily, last dose 24 hours before the sample.",
    )
    p.adherence("2025-06-09")
    p.mutation("2025-06-09", "2025-06-24")
    return p


def tfr_candidate() -> Patient:
    """Imatinib since Sep 2018 (6.8 years); MR4 since Aug 2020, MR4.5 since Feb 2022; e14a2."""
    p = Patient("cml-tfr-candidate", "05-tfr-candidate.json")
    p.patient("Remy", "Mission", "female", "1971-08-01", "EX-000105")
    p.condition("2018-08-13")
    p.counts("2018-08-27", wbc=52, platelets=360, basophils=4, blasts=1, spleen=1)
    p.pcr("2018-08-27", 54.0, 47000, transcript="e14a2")
    p.tki("imatinib", 400, "2018-09-03", asserted="2025-06-09")
    p.pcrs(
        [
            ("2018-11-26", 3.2, 82000),
            ("2019-02-25", 0.41, 77000),
            ("2019-08-19", 0.035, 69000),
            ("2020-02-24", 0.012, 71000),
            ("2020-08-24", 0.0085, 40000),
            ("2021-02-22", 0.0061, 52000),
            ("2021-08-23", 0.0044, 47000),
            ("2022-02-21", ND, 58000),
            ("2022-05-23", ND, 61000),
            ("2022-08-22", 0.0025, 80000),
            ("2022-11-21", ND, 72000),
            ("2023-02-20", ND, 49000),
            ("2023-05-22", ND, 66000),
            ("2023-08-21", ND, 83000),
            ("2023-11-20", 0.0021, 90000),
            ("2024-02-19", ND, 57000),
            ("2024-05-20", ND, 64000),
            ("2024-08-19", ND, 71000),
            ("2024-11-18", ND, 59000),
            ("2025-02-17", ND, 75000),
            ("2025-06-09", ND, 68000),
        ]
    )
    p.adherence("2025-06-09")
    return p


def tfr_relapse() -> Patient:
    """Imatinib 2016-2025 stopped for TFR on 13 Jan 2025; 0.35 % on 9 Jun 2025: loss of MMR."""
    p = Patient("cml-tfr-relapse", "06-tfr-molecular-relapse.json")
    p.patient("Rhea", "Lapse", "female", "1970-04-18", "EX-000106")
    p.condition("2016-04-11")
    p.pcr("2016-04-25", 61.0, 52000, transcript="e13a2")
    p.tki(
        "imatinib",
        400,
        "2016-05-02",
        end="2025-01-13",
        status="stopped",
        reason=TFR_STOP,
        asserted="2025-01-13",
    )
    p.pcrs(
        [
            ("2016-07-25", 5.5, 76000),
            ("2016-10-24", 0.52, 81000),
            ("2017-04-17", 0.06, 74000),
            ("2019-04-15", ND, 55000),
            ("2021-04-12", 0.0028, 70000),
            ("2022-10-17", ND, 48000),
            ("2023-04-17", ND, 61000),
            ("2023-10-16", ND, 52000),
            ("2024-04-15", ND, 66000),
            ("2024-10-14", ND, 58000),
            ("2025-01-06", ND, 63000),
            # after the stop
            ("2025-02-10", ND, 61000),
            ("2025-03-10", 0.004, 58000),
            ("2025-04-07", 0.018, 67000),
            ("2025-05-12", 0.062, 72000),
            ("2025-06-09", 0.35, 79000),
        ]
    )
    return p


def reduction_candidate() -> Patient:
    """Imatinib since Feb 2021, MMR since Jan 2022 (not MR4); moderate cramps and fatigue."""
    p = Patient("cml-reduction-candidate", "07-dose-reduction-candidate.json")
    p.patient("Dora", "Reduction", "female", "1957-10-03", "EX-000107")
    p.condition("2021-01-18")
    p.pcr("2021-01-25", 39.0, 46000, transcript="e14a2")
    p.tki("imatinib", 400, "2021-02-01", asserted="2025-04-14")
    p.pcrs(
        [
            ("2021-04-26", 6.0, 72000),
            ("2021-07-26", 0.9, 80000),
            ("2022-01-17", 0.08, 66000),
            ("2022-04-19", 0.062, 71000),
            ("2022-07-18", 0.055, 59000),
            ("2022-10-17", 0.048, 83000),
            ("2023-01-16", 0.041, 77000),
            ("2023-04-17", 0.038, 64000),
            ("2023-07-17", 0.044, 70000),
            ("2023-10-16", 0.036, 75000),
            ("2024-01-15", 0.029, 62000),
            ("2024-04-15", 0.033, 68000),
            ("2024-07-15", 0.027, 73000),
            ("2024-10-14", 0.031, 61000),
            ("2025-01-13", 0.024, 79000),
            ("2025-04-14", 0.028, 67000),
        ]
    )
    p.adverse_event(
        "cramps",
        "2024-09-10",
        ("55300003", "Muscle cramps in calves and hands, most nights"),
        "moderate",
        "ongoing",
        "imatinib",
    )
    p.adverse_event(
        "fatigue",
        "2024-11-05",
        ("84229001", "Fatigue limiting work and daily activities"),
        "moderate",
        "ongoing",
        "imatinib",
    )
    p.adverse_event(
        "nausea",
        "2025-01-14",
        ("422587007", "Occasional nausea after the dose"),
        "mild",
        "ongoing",
        "imatinib",
    )
    return p


def low_copies() -> Patient:
    """Imatinib since Oct 2020, MR4 in April 2025; latest sample undetectable with 8,000 ABL1."""
    p = Patient("cml-low-copies", "08-low-control-copies.json")
    p.patient("Cody", "Copies", "male", "1975-07-09", "EX-000108")
    p.condition("2020-09-21")
    p.pcr("2020-09-28", 66.0, 39000, transcript="e13a2")
    p.tki("imatinib", 400, "2020-10-05", asserted="2025-06-16")
    p.pcrs(
        [
            ("2020-12-28", 5.5, 71000),
            ("2021-03-29", 0.6, 76000),
            ("2021-09-20", 0.07, 69000),
            ("2022-03-21", 0.045, 72000),
            ("2022-09-19", 0.031, 64000),
            ("2023-03-20", 0.024, 81000),
            ("2023-09-18", 0.019, 58000),
            ("2024-03-18", 0.016, 66000),
            ("2024-09-16", 0.014, 73000),
            ("2025-01-06", 0.012, 62000),
            ("2025-04-07", 0.009, 35000),
        ]
    )
    p.pcr(
        "2025-06-16",
        ND,
        8000,
        note="BCR::ABL1 not detected; ABL1 8,000 copies: sample of insufficient sensitivity "
        "(fewer than 10,000 ABL1 copies), please repeat.",
    )
    return p


def cyp3a4() -> Patient:
    """Imatinib since May 2023, in MMR; clarithromycin since 20 Jun 2025; trough 2,380 ng/mL."""
    p = Patient("cml-cyp3a4", "09-cyp3a4-inhibitor.json")
    p.patient("Clara", "Ithro", "female", "1983-01-25", "EX-000109")
    p.condition("2023-04-24")
    p.pcr("2023-05-01", 51.0, 43000, transcript="e14a2")
    p.tki("imatinib", 400, "2023-05-08", asserted="2025-06-20")
    p.pcrs(
        [
            ("2023-07-31", 7.2, 79000),
            ("2023-10-30", 0.8, 84000),
            ("2024-04-22", 0.085, 71000),
            ("2024-07-22", 0.07, 66000),
            ("2024-10-21", 0.052, 75000),
            ("2025-01-20", 0.061, 69000),
            ("2025-04-28", 0.048, 73000),
        ]
    )
    p.clarithromycin("2025-06-20", "2025-07-03")
    p.trough(
        "2025-06-27",
        2380,
        23,
        "Pre-dose sample; imatinib 400 mg once daily, last dose 23 hours before the sample. "
        "Clarithromycin 500 mg twice daily since 20 June 2025.",
    )
    return p


def overdue() -> Patient:
    """Imatinib since Feb 2019, stable MMR; last BCR::ABL1 on 16 Sep 2024 (due 16 Dec 2024)."""
    p = Patient("cml-overdue", "10-overdue-pcr.json")
    p.patient("Otto", "Overdue", "male", "1961-12-12", "EX-000110")
    p.condition("2019-01-21")
    p.pcr("2019-01-28", 70.0, 41000, transcript="e13a2")
    p.tki("imatinib", 400, "2019-02-04", asserted="2024-09-16")
    p.pcrs(
        [
            ("2019-04-29", 4.8, 77000),
            ("2019-07-29", 0.7, 69000),
            ("2020-01-20", 0.09, 72000),
            ("2020-07-20", 0.06, 80000),
            ("2021-01-18", 0.05, 65000),
            ("2021-07-19", 0.045, 71000),
            ("2022-01-17", 0.038, 68000),
            ("2022-07-18", 0.041, 74000),
            ("2023-03-20", 0.036, 63000),
            ("2023-11-13", 0.043, 70000),
            ("2024-09-16", 0.04, 66000),
        ]
    )
    return p


def non_is_with_cf() -> Patient:
    """Imatinib since Aug 2023; a laboratory reporting on its own scale with CF 0.52 (IS = x 0.52)."""
    p = Patient("cml-non-is-cf", "11-non-is-with-conversion-factor.json")
    p.patient("Connie", "Version", "female", "1988-06-30", "EX-000111")
    p.condition("2023-07-31")
    p.pcr("2023-08-07", 110.0, 40000, local=True, local_cf=0.52, transcript="e13a2")
    p.tki("imatinib", 400, "2023-08-14", asserted="2025-04-28")
    for day, local, abl1 in [
        ("2023-11-06", 12.0, 73000),
        ("2024-02-05", 1.7, 69000),
        ("2024-07-29", 0.18, 77000),
        ("2024-10-28", 0.16, 64000),
        ("2025-01-27", 0.14, 71000),
        ("2025-04-28", 0.15, 68000),
    ]:
        p.pcr(day, local, abl1, local=True, local_cf=0.52)
    return p


def non_is_without_cf() -> Patient:
    """Imatinib since Jan 2024; every BCR::ABL1 result on a local scale with no conversion factor."""
    p = Patient("cml-non-is-no-cf", "12-non-is-without-conversion-factor.json")
    p.patient("Norris", "Noscale", "male", "1972-03-03", "EX-000112")
    p.condition("2023-12-25")
    p.pcr("2024-01-02", 95.0, 37000, local=True, transcript="e14a2")
    p.tki("imatinib", 400, "2024-01-08", asserted="2025-06-16")
    for day, local, abl1 in [
        ("2024-04-01", 9.5, 70000),
        ("2024-07-01", 1.2, 74000),
        ("2024-12-23", 0.21, 66000),
        ("2025-03-24", 0.15, 72000),
        ("2025-06-16", 0.12, 69000),
    ]:
        p.pcr(day, local, abl1, local=True)
    return p


def cytogenetic() -> Patient:
    """Imatinib since Dec 2023 followed by karyotype: CHR at 3 months, Ph+ 65/30/0/0 %; no MMR at 18."""
    p = Patient("cml-cytogenetic", "13-cytogenetic-era.json")
    p.patient("Phil", "Adelphia", "male", "1976-11-06", "EX-000113")
    p.condition("2023-11-20")
    p.counts("2023-11-27", wbc=86, platelets=560, basophils=6, blasts=2, spleen=6)
    p.karyotype("2023-11-27", 20, 20, "46,XY,t(9;22)(q34;q11.2)[20]")
    p.tki("imatinib", 400, "2023-12-04", asserted="2025-05-26")
    p.counts("2024-02-26", wbc=6.1, platelets=232, basophils=0.6, blasts=0, spleen=0)
    p.hematologic_response("2024-02-26", complete=True)
    p.karyotype("2024-02-26", 13, 20, "46,XY,t(9;22)(q34;q11.2)[13]/46,XY[7]")
    p.counts("2024-05-27", wbc=5.4, platelets=218, basophils=0.5, blasts=0, spleen=0)
    p.karyotype("2024-05-27", 6, 20, "46,XY,t(9;22)(q34;q11.2)[6]/46,XY[14]")
    p.counts("2024-11-18", wbc=5.9, platelets=224, basophils=0.7, blasts=0, spleen=0)
    p.karyotype("2024-11-18", 0, 20, "46,XY[20]")
    p.pcr("2024-11-18", 0.55, 92000)
    p.counts("2025-05-26", wbc=6.3, platelets=241, basophils=0.4, blasts=0, spleen=0)
    p.karyotype("2025-05-26", 0, 20, "46,XY[20]")
    p.pcr("2025-05-26", 0.42, 88000)
    return p


def dose_history() -> Patient:
    """400 mg from Mar 2023, 600 mg from Oct 2023 (trough 780), held 6-19 May 2024, 600 mg since."""
    p = Patient("cml-dose-history", "14-dose-history-risk-scores.json")
    p.patient("Doris", "History", "female", "1962-02-10", "EX-000114")
    p.condition("2023-02-20")
    p.counts("2023-02-27", wbc=142, platelets=610, basophils=8, blasts=4, spleen=9)
    p.pcr("2023-02-27", 88.0, 35000, transcript="e13a2+e14a2")
    p.tki(
        "imatinib-400",
        400,
        "2023-03-06",
        end="2023-10-01",
        status="completed",
        reason=(DOSE_CHANGE[0], "Escalated to 600 mg daily (6-month warning, trough 780 ng/mL)"),
    )
    p.pcr("2023-05-29", 8.5, 71000)
    p.pcr("2023-08-28", 2.4, 77000)
    p.trough(
        "2023-08-28",
        780,
        24,
        "Pre-dose sample; imatinib 400 mg once daily, last dose 24 hours before the sample.",
    )
    p.adherence("2023-08-28")
    p.mutation("2023-08-28", "2023-09-11")
    p.tki(
        "imatinib-600",
        600,
        "2023-10-02",
        end="2024-05-05",
        status="completed",
        reason=("other", "Held peri-operatively (elective inguinal hernia repair)"),
    )
    p.trough(
        "2023-11-13",
        1420,
        24,
        "Pre-dose sample; imatinib 600 mg once daily since 2 October 2023, last dose 24 hours "
        "before the sample.",
    )
    p.pcr("2024-02-19", 0.45, 83000)
    p.tki(
        "imatinib-600-held",
        600,
        "2024-05-06",
        end="2024-05-19",
        status="on-hold",
        reason=("other", "Held peri-operatively (elective inguinal hernia repair)"),
    )
    p.tki("imatinib-600-resumed", 600, "2024-05-20", asserted="2025-05-26")
    p.pcrs(
        [
            ("2024-05-27", 0.21, 69000),
            ("2024-08-26", 0.085, 74000),
            ("2024-11-25", 0.06, 66000),
            ("2025-02-24", 0.042, 72000),
            ("2025-05-26", 0.031, 70000),
        ]
    )
    p.trough(
        "2025-05-26",
        1380,
        23.5,
        "Pre-dose sample; imatinib 600 mg once daily, last dose 23.5 hours before the sample.",
    )
    return p


def early() -> Patient:
    """Imatinib since 7 Apr 2025; 14 % on 16 Jun 2025 (2.3 months): 3-month warning, unconfirmed."""
    p = Patient("cml-early", "15-early-3-month-warning.json")
    p.patient("Eddie", "Early", "male", "1987-03-10", "EX-000115")
    p.condition("2025-03-24")
    p.counts("2025-03-31", wbc=38, platelets=290, basophils=2, blasts=0.5, spleen=0)
    p.pcr("2025-03-31", 48.0, 42000, transcript="e13a2")
    p.tki("imatinib", 400, "2025-04-07", asserted="2025-06-16")
    p.pcr("2025-06-16", 14.0, 61000)
    return p


def reduced() -> Patient:
    """Imatinib 400 mg 2019-2025 with stable MMR, reduced to 300 mg on 3 Feb 2025 (fatigue)."""
    p = Patient("cml-reduced", "16-after-dose-reduction.json")
    p.patient("Reid", "Uced", "male", "1964-05-05", "EX-000116")
    p.condition("2019-08-19")
    p.pcr("2019-08-26", 63.0, 45000, transcript="e14a2")
    p.tki(
        "imatinib-400",
        400,
        "2019-09-02",
        end="2025-02-02",
        status="completed",
        reason=(DOSE_CHANGE[0], "Dose reduced to 300 mg daily"),
    )
    p.tki("imatinib-300", 300, "2025-02-03", asserted="2025-06-09")
    p.adverse_event(
        "fatigue",
        "2024-10-21",
        ("84229001", "Fatigue affecting work"),
        "moderate",
        "resolved",
        "imatinib-400",
    )
    p.pcrs(
        [
            ("2019-11-25", 5.1, 74000),
            ("2020-02-24", 0.7, 69000),
            ("2020-08-17", 0.09, 72000),
            ("2021-02-15", 0.06, 66000),
            ("2021-08-16", 0.045, 77000),
            ("2022-02-14", 0.04, 70000),
            ("2022-08-15", 0.035, 63000),
            ("2023-02-13", 0.03, 75000),
            ("2023-08-14", 0.028, 68000),
            ("2024-02-12", 0.032, 71000),
            ("2024-08-12", 0.026, 64000),
            ("2024-11-11", 0.03, 73000),
            ("2025-03-17", 0.035, 69000),
            ("2025-04-28", 0.04, 66000),
            ("2025-06-09", 0.038, 72000),
        ]
    )
    return p


def tfr_ongoing() -> Patient:
    """Imatinib 2014-2024 stopped for TFR on 7 Oct 2024; 8 months later still MR4.5."""
    p = Patient("cml-tfr-ongoing", "17-tfr-in-remission.json")
    p.patient("Freya", "Remission", "female", "1966-09-09", "EX-000117")
    p.condition("2014-02-17")
    p.pcr("2014-02-24", 57.0, 48000, transcript="e14a2")
    p.tki(
        "imatinib",
        400,
        "2014-03-03",
        end="2024-10-07",
        status="stopped",
        reason=TFR_STOP,
        asserted="2024-10-07",
    )
    p.pcrs(
        [
            ("2014-05-26", 3.0, 73000),
            ("2014-08-25", 0.3, 79000),
            ("2015-02-16", 0.04, 68000),
            ("2021-10-04", ND, 61000),
            ("2022-04-04", ND, 72000),
            ("2022-10-03", 0.0022, 85000),
            ("2023-04-03", ND, 54000),
            ("2023-10-02", ND, 66000),
            ("2024-04-01", ND, 58000),
            ("2024-09-30", ND, 70000),
            # after the stop
            ("2024-11-04", ND, 57000),
            ("2024-12-02", ND, 63000),
            ("2025-01-06", ND, 49000),
            ("2025-02-03", 0.0041, 61000),
            ("2025-03-03", ND, 55000),
        ]
    )
    p.pcr("2025-04-07", ND, 60000, limit=0.0017)
    p.pcr("2025-06-02", ND, 52000, limit=0.0019)
    return p


def tfr_restart() -> Patient:
    """Imatinib 2015-2024, stopped for TFR on 1 Jul 2024; loss of MMR (0.21 %) on 24 Mar 2025;
    imatinib restarted on 14 Apr 2025; MMR not yet regained (0.15 % on 26 May 2025)."""
    p = Patient("cml-tfr-restart", "18-tfr-restart-after-relapse.json")
    p.patient("Otto", "Restart", "male", "1962-02-14", "EX-000118")
    p.condition("2015-02-16")
    p.pcr("2015-02-23", 48.0, 51000, transcript="e14a2")
    p.tki(
        "imatinib",
        400,
        "2015-03-02",
        end="2024-07-01",
        status="stopped",
        reason=TFR_STOP,
        asserted="2024-07-01",
    )
    p.tki("imatinib-restart", 400, "2025-04-14", asserted="2025-05-26")
    p.pcrs(
        [
            ("2015-06-01", 4.8, 77000),
            ("2015-08-31", 0.7, 82000),
            ("2016-02-29", 0.06, 69000),
            ("2020-06-01", ND, 63000),
            ("2021-06-07", ND, 58000),
            ("2022-06-06", ND, 71000),
            ("2023-06-05", ND, 66000),
            ("2024-06-03", ND, 59000),
            # after the stop
            ("2024-08-05", ND, 61000),
            ("2024-10-07", 0.006, 57000),
            ("2025-01-06", 0.031, 64000),
            ("2025-03-24", 0.21, 70000),
            # after the restart
            ("2025-05-26", 0.15, 75000),
        ]
    )
    return p


def emergent_aca() -> Patient:
    """Imatinib since Jan 2023; milestones met; at 18 months trisomy 8 in the Ph+ cells (a
    high-risk additional chromosomal abnormality emerging on treatment)."""
    p = Patient("cml-emergent-aca", "19-emergent-aca.json")
    p.patient("Ada", "Clone", "female", "1959-07-30", "EX-000119")
    p.condition("2023-01-02")
    p.karyotype("2023-01-02", 20, 20, "46,XX,t(9;22)(q34;q11.2)[20]")
    p.pcr("2023-01-02", 66.0, 47000, transcript="e13a2")
    p.tki("imatinib", 400, "2023-01-09", asserted="2025-06-02")
    p.pcrs(
        [
            ("2023-04-03", 6.1, 81000),
            ("2023-07-03", 0.8, 76000),
            ("2023-12-18", 0.09, 69000),
            ("2024-07-01", 0.35, 72000),
            ("2025-01-06", 0.52, 80000),
            ("2025-06-02", 0.61, 77000),
        ]
    )
    p.karyotype(
        "2024-07-01",
        3,
        20,
        "47,XX,+8,t(9;22)(q34;q11.2)[3]/46,XX[17]",
        high_risk_aca=True,
        in_ph_positive=True,
    )
    return p


def paediatric() -> Patient:
    """A 14-year-old on imatinib 300 mg since Sep 2019, in deep molecular response since 2021:
    an adult would be a TFR candidate; a child stops only within a study."""
    p = Patient("cml-paediatric", "20-paediatric.json")
    p.patient("Pia", "Young", "female", "2011-05-20", "EX-000120")
    p.condition("2019-08-19")
    p.counts("2019-08-26", wbc=112, platelets=410, basophils=4, blasts=2, spleen=5)
    p.pcr("2019-08-26", 71.0, 45000, transcript="e14a2")
    p.tki("imatinib", 300, "2019-09-02", asserted="2025-06-09")
    p.pcrs(
        [
            ("2019-12-02", 3.9, 78000),
            ("2020-03-02", 0.45, 84000),
            ("2020-08-31", 0.05, 66000),
            ("2021-03-01", ND, 62000),
            ("2021-09-06", ND, 59000),
            ("2022-03-07", ND, 71000),
            ("2022-09-05", ND, 68000),
            ("2023-03-06", ND, 57000),
            ("2023-09-04", ND, 64000),
            ("2024-03-04", ND, 60000),
            ("2024-09-02", ND, 73000),
            ("2025-03-03", ND, 58000),
            ("2025-06-09", ND, 61000),
        ]
    )
    return p


def us_core_orders() -> Patient:
    """Dasatinib 100 mg ordered every 3 months from 8 Jan 2024 (US Core MedicationRequests, RxNorm
    clinical drug only, 1 tablet daily); reduced to 50 mg on 30 Dec 2024 for a pleural effusion."""
    p = Patient("cml-orders", "21-us-core-medication-requests.json")
    p.patient("Orla", "Orders", "female", "1971-05-19", "EX-000121")
    p.condition("2023-12-18")
    p.pcr("2023-12-27", 52.0, 38000, transcript="e14a2")
    dasatinib_100 = ("799047", "dasatinib 100 MG Oral Tablet", "Dasatinib 100 mg tablet")
    dasatinib_50 = ("643107", "dasatinib 50 MG Oral Tablet", "Dasatinib 50 mg tablet")
    p.order("dasatinib-100-1", dasatinib_100, "2024-01-08")
    p.pcr("2024-04-08", 4.1, 64000)
    p.order("dasatinib-100-2", dasatinib_100, "2024-04-05")
    p.pcr("2024-07-08", 0.42, 71000)
    p.order("dasatinib-100-3", dasatinib_100, "2024-07-02")
    p.order(
        "dasatinib-100-4",
        dasatinib_100,
        "2024-09-30",
        status="stopped",
        reason="Dose reduced to 50 mg daily: pleural effusion",
    )
    p.pcr("2025-01-06", 0.072, 68000)
    p.order("dasatinib-50-1", dasatinib_50, "2024-12-30")
    p.pcr("2025-02-10", 0.058, 70000)
    p.pcr("2025-03-24", 0.049, 66000)
    p.order("dasatinib-50-2", dasatinib_50, "2025-03-28", status="active")
    p.pcr("2025-05-05", 0.044, 73000)
    p.pcr("2025-06-16", 0.039, 71000)
    return p


def local_laboratory() -> Patient:
    """Imatinib 400 mg since 4 Mar 2024; the laboratory's own codes, values as text ("0,0380 %IS")
    and its unit spelling; MMR at 12 months."""
    p = Patient("cml-local-lab", "22-local-lab-codes.json")
    p.patient("Lola", "Local", "female", "1966-09-02", "EX-000122")
    p.condition("2024-02-19")
    p.pcr("2024-02-26", 61.0, 41000, transcript="e13a2+e14a2")
    p.tki("imatinib", 400, "2024-03-04", asserted="2025-06-02")
    p.pcrs(
        [
            ("2024-06-03", 7.4, 66000),
            ("2024-09-02", 0.82, 70000),
            ("2025-03-03", 0.091, 72000),
            ("2025-06-02", 0.038, 69000),
        ]
    )
    p.as_local_laboratory()
    return p


def dispensed() -> Patient:
    """Imatinib 400 mg known only from the pharmacy's dispenses (90 days each) since 3 Jun 2024."""
    p = Patient("cml-dispensed", "23-medication-dispense.json")
    p.patient("Dita", "Dispense", "male", "1958-11-23", "EX-000123")
    p.condition("2024-05-20")
    p.pcr("2024-05-27", 74.0, 36000, transcript="e14a2")
    for n, day in enumerate(["2024-06-03", "2024-08-30", "2024-11-27", "2025-02-24", "2025-05-23"]):
        p.dispense(f"imatinib-{n + 1}", day, 400, 90)
    p.pcrs(
        [
            ("2024-09-02", 8.9, 58000),
            ("2024-12-02", 2.6, 62000),
            ("2025-06-02", 0.31, 70000),
        ]
    )
    return p


PATIENTS = (
    optimal,
    warning_6m,
    t315i,
    low_trough,
    tfr_candidate,
    tfr_relapse,
    reduction_candidate,
    low_copies,
    cyp3a4,
    overdue,
    non_is_with_cf,
    non_is_without_cf,
    cytogenetic,
    dose_history,
    early,
    reduced,
    tfr_ongoing,
    tfr_restart,
    emergent_aca,
    paediatric,
    us_core_orders,
    local_laboratory,
    dispensed,
)


def render(patient: Patient) -> str:
    return json.dumps(patient.bundle(), indent=2, ensure_ascii=False) + "\n"


def build() -> dict[str, str]:
    """File name -> the JSON text of every example."""
    out = {}
    for make in PATIENTS:
        patient = make()
        out[patient.file] = render(patient)
    return out


def site_concept_maps() -> dict[str, str]:
    """examples/conceptmaps/: the site's ConceptMap for the laboratory of 22-local-lab-codes."""

    def element(code: str, display: str, to: str) -> dict[str, Any]:
        target = {"code": to, "equivalence": "equivalent"}
        return {"code": code, "display": display, "target": [target]}

    concept_map = {
        "resourceType": "ConceptMap",
        "id": "molecular-laboratory",
        "url": f"{BASE}/example/ConceptMap/molecular-laboratory",
        "name": "MolecularLaboratoryToFhirCml",
        "title": "The molecular laboratory's own codes and units, for fhir-cml",
        "status": "active",
        "description": "What the Molecular Haematology Laboratory's local test codes and unit "
        "spellings mean (examples/22-local-lab-codes.json). Pass it with --concept-map.",
        "group": [
            {
                "source": LOCAL_LAB,
                "target": LOINC,
                "element": [element("BCRABL-IS", "BCR-ABL1 IS", BCR_ABL1_IS)],
            },
            {
                "source": LOCAL_LAB,
                "target": CS_CML,
                "element": [element("ABL1-CN", "ABL1 copies", "abl1-copies")],
            },
            {"target": UCUM, "element": [element("Kopien", "copies", "{copies}")]},
        ],
    }
    text = json.dumps(concept_map, indent=2, ensure_ascii=False) + "\n"
    return {"conceptmaps/molecular-laboratory.json": text}


def main() -> None:
    EXAMPLES.mkdir(exist_ok=True)
    (EXAMPLES / "conceptmaps").mkdir(exist_ok=True)
    for name, text in (build() | site_concept_maps()).items():
        (EXAMPLES / name).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
