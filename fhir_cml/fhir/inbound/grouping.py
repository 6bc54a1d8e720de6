"""Resources to patients: each resource goes to the patient its subject names, and a patient is
assessed only when there is evidence of CML: a CML Condition or a BCR::ABL1 (p210) result. A TKI
alone is not enough - imatinib and dasatinib also treat GIST and Ph+ ALL - so such patients are
left out with an issue naming them.

References are resolved after everything is read, because a Bundle may name a Patient entry
(``urn:uuid:``) before or after the entries that refer to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from fhir_cml.domain.model import Issue
from fhir_cml.domain.vocabulary import IssueCode, Severity
from fhir_cml.fhir.inbound.loader import Entry
from fhir_cml.fhir.inbound.medications import MedicationIndex, identify, medication_reference
from fhir_cml.fhir.inbound.observations import is_bcr_abl1
from fhir_cml.fhir.inbound.patients import is_cml_condition
from fhir_cml.fhir.inbound.references import PatientIndex, ref_of

# Records naming a drug: their Medication goes with the patient; a TKI alone is no evidence.
MEDICATION_RECORDS: Final = frozenset(
    {"MedicationStatement", "MedicationRequest", "MedicationDispense", "MedicationAdministration"}
)
SUBJECT_TYPES: Final = frozenset({"Observation", "Condition", "AdverseEvent"}) | MEDICATION_RECORDS
READ_TYPES: Final = SUBJECT_TYPES | {"Patient", "Medication"}
MAX_SUBJECT_ISSUES: Final = 100


@dataclass
class Groups:
    patients: dict[str, list[Entry]]  # patients with CML evidence, by key
    skipped: int  # patients without CML evidence
    issues: list[Issue] = field(default_factory=list)


class Grouper:
    """Collects entries (``add``), then assigns them to patients (``finish``)."""

    def __init__(self, patients_expected: bool = False) -> None:
        """``patients_expected``: the input has Patient resources (a Bulk export read in
        partitions: this one may hold none), so a patient without one is worth saying."""
        self._patients_expected = patients_expected
        # (entry, its type, the slot of its subject.reference text or None), in input order.
        self._pending: list[tuple[Entry, str, list[Any] | None]] = []
        # subject.reference text -> slot: [(patient key, group)] once the text alone resolved it.
        self._slots: dict[str, list[Any]] = {}
        self._patients: dict[str, list[Entry]] = {}
        self._index = PatientIndex()
        self._medications = MedicationIndex()
        self._medication_entries: dict[int, Entry] = {}
        self._unsupported: dict[str, int] = {}
        self._with_patient: set[str] = set()  # keys of the Patient resources read

    def add(self, entry: Entry) -> None:
        rtype = entry.rtype
        if rtype in SUBJECT_TYPES:
            # The subject's reference is read here, while the resource is at hand; finish()
            # resolves each distinct text once rather than reading every resource again.
            subject = entry.resource.get("subject")
            reference = subject.get("reference") if type(subject) is dict else None
            slot: list[Any] | None = None
            if type(reference) is str:
                slot = self._slots.get(reference)
                if slot is None:
                    slot = self._slots[reference] = [None, reference]
            self._pending.append((entry, rtype, slot))
        elif rtype == "Patient":
            key = self._index.add(entry)
            self._patients.setdefault(key, []).append(entry)
            self._with_patient.add(key)
        elif rtype == "Medication":
            self._medications.add(entry)
            self._medication_entries[id(entry.resource)] = entry
        else:
            self._unsupported[rtype] = self._unsupported.get(rtype, 0) + 1

    def finish(self) -> Groups:
        issues: list[Issue] = []
        evidence: set[str] = set()
        on_tki: set[str] = set()
        without_subject = 0
        medications_added: dict[str, set[int]] = {}
        index = self._index
        known = index.known
        patients = self._patients
        key: str | None
        for entry, rtype, slot in self._pending:
            hit = slot[0] if slot is not None else None
            if hit is not None:
                key, group = hit
            else:
                res = entry.resource
                text = slot[1] if slot is not None else None
                found = known(text) if text is not None else None
                key, problem = patient_of(index, res, found)
                if key is None:
                    without_subject += 1
                    if without_subject <= MAX_SUBJECT_ISSUES:
                        issues.append(
                            Issue(
                                Severity.WARNING,
                                IssueCode.NO_SUBJECT,
                                f"{ref_of(entry)} ({entry.source}) {problem}: it cannot be "
                                "assigned to a patient and is left out.",
                                ref_of(entry),
                            )
                        )
                    continue
                group = patients.setdefault(key, [])
                if slot is not None and found is not None and found[0] == key:
                    slot[0] = (key, group)  # resolved from the text alone
            group.append(entry)
            if rtype in MEDICATION_RECORDS:
                res = entry.resource
                self._add_medication(res, key, group, medications_added)
                if key not in on_tki and _is_tki(res, self._medications):
                    on_tki.add(key)
            elif key not in evidence and _is_evidence(rtype, entry.resource):
                evidence.add(key)
        for key in sorted(on_tki - evidence):
            issues.append(
                Issue(
                    Severity.INFORMATION,
                    IssueCode.AMBIGUOUS,
                    f"{key} takes a TKI but has neither a CML diagnosis nor a BCR::ABL1 result: not "
                    "assessed (TKIs also treat GIST and Ph+ ALL). Add the CML Condition to include it.",
                    key,
                )
            )
        if without_subject > MAX_SUBJECT_ISSUES:
            issues.append(
                Issue(
                    Severity.WARNING,
                    IssueCode.NO_SUBJECT,
                    f"{without_subject - MAX_SUBJECT_ISSUES} more resources have no usable "
                    "subject and are left out (the first "
                    f"{MAX_SUBJECT_ISSUES} are listed).",
                    None,
                )
            )
        if self._unsupported:
            issues.append(unsupported_issue(self._unsupported))
        patients = {key: group for key, group in sorted(self._patients.items()) if key in evidence}
        if self._patients_expected or self._with_patient:
            issues += [
                _no_patient(key, group)
                for key, group in patients.items()
                if key not in self._with_patient
            ]
        return Groups(patients, len(self._patients) - len(patients), issues)

    def _add_medication(
        self, res: dict[str, Any], key: str, group: list[Entry], added: dict[str, set[int]]
    ) -> None:
        """A bundled Medication goes with each patient whose statement refers to it."""
        reference = medication_reference(res)
        if reference is None:
            return
        medication = self._medications.get(reference)
        if medication is None:
            return
        seen = added.setdefault(key, set())
        if id(medication) not in seen:
            seen.add(id(medication))
            group.append(self._medication_entries[id(medication)])


def patient_of(
    index: PatientIndex,
    res: dict[str, Any],
    found: tuple[str | None, str | None] | None = None,
) -> tuple[str | None, str | None]:
    """(patient key, None) or (None, why not): the subject, else the patient element.

    ``found`` is the subject's reference already resolved, when the caller has it.
    """
    key, problem = found if found is not None else index.resolve(res, "subject")
    if key is None and "patient" in res:
        key, problem = index.resolve(res, "patient")
    return key, problem


def unsupported_issue(counts: dict[str, int]) -> Issue:
    """One issue for the resources of types fhir-cml does not read, most frequent first."""
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    listed = ", ".join(f"{rtype} ({n})" for rtype, n in ranked)
    return Issue(
        Severity.INFORMATION,
        IssueCode.UNSUPPORTED_TYPE,
        f"Not read: {listed} (fhir-cml reads Patient, Observation, Condition, "
        "MedicationStatement, MedicationRequest, MedicationDispense, "
        "MedicationAdministration, Medication and AdverseEvent).",
        None,
    )


def _no_patient(key: str, group: list[Entry]) -> Issue:
    """A patient named by its resources whose Patient resource is not in the input: a sign of
    an incomplete export; read all the same, without what only the Patient says (the birth
    date, hence the age-based risk scores)."""
    return Issue(
        Severity.WARNING,
        IssueCode.MISSING_VALUE,
        f"{key} has {len(group)} resources in the input but no Patient resource (the export "
        "may be incomplete): read without a birth date, so age-based risk scores are not "
        "evaluable.",
        key,
    )


def _is_evidence(rtype: str, res: dict[str, Any]) -> bool:
    if rtype == "Observation":
        return is_bcr_abl1(res)
    if rtype == "Condition":
        return is_cml_condition(res)
    return False


def _is_tki(res: dict[str, Any], medications: MedicationIndex) -> bool:
    drug, _ = identify(res, medications)
    return drug is not None and drug.tki is not None
