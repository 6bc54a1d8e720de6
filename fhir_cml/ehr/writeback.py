"""Writing assessments back to the FHIR server: idempotent, superseding, in transactions.

For each assessment the outbound builders make a RiskAssessment, a CarePlan (draft proposal) and
a Provenance, identified by the assessment fingerprint and written as conditional creates, so a
second write of the same assessment creates nothing. What is on the server decides what to do:

- a draft fhir-cml CarePlan with the same fingerprint is there: nothing to write (no request);
- none is there: create the three resources;
- a draft CarePlan with another fingerprint is there: the new assessment *supersedes* it in the
  same transaction: the new CarePlan ``replaces`` it, it is revoked, and its RiskAssessment gets
  the ``replaced-by`` extension (both updated with ``If-Match`` on the version read).

Several patients go into one transaction (fewer requests). A transaction is all or nothing, so
when the server refuses one (4xx), the group is split in halves until the patient whose entries
it refuses is found; the others are written and that patient is reported with the server's
OperationOutcome (a server that refuses big transactions is found out the same way, once: see
:class:`TransactionLimit`). Errors that are not about the content (5xx, timeouts, connection
loss) fail the whole group, which the next run retries. For servers that cap transactions
hard, ``mode="batch"`` writes a group in three batches instead (:func:`_write_batches`);
``mode="auto"`` (the default) starts with transactions and changes to batches when the server
takes fewer than ``AUTO_BATCH_BELOW`` patients per transaction.
The application service (:mod:`fhir_cml.app`) builds and validates the resources and calls
these for every face.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from fhir_cml.ehr.client import FhirClient, outcome_text
from fhir_cml.ehr.fetch import (
    DEFAULT_FETCH,
    FetchOptions,
    current_suggestions,
    risk_assessments_by_identifier,
)
from fhir_cml.errors import FhirClientError, FhirHttpError, FhirResponseError
from fhir_cml.fhir import canonical as c
from fhir_cml.fhir.outbound import Successor, Written, supersede, transaction_entries
from fhir_cml.fhir.outbound.narrative import superseded
from fhir_cml.fhir.outbound.supersede import local_reference, replacing, update_entries

log = logging.getLogger(__name__)

Action = Literal["create", "supersede", "unchanged", "revoke", "accept"]
# transaction: each group of patients in one transaction (atomic: a patient's RiskAssessment,
# CarePlan and Provenance appear together or not at all). batch: three batches in dependency
# order, for servers that cap transactions (see _write_batches).
# auto: transactions, unless the server turns out to take so few patients per transaction that
# three batches per group are fewer requests; then batches for the rest of the run.
WriteMode = Literal["auto", "transaction", "batch"]
AUTO_BATCH_BELOW = 10  # patients per transaction under which auto writes in batches
MAX_ENTRIES = 500  # entries per transaction, whatever the number of patients


@dataclass(frozen=True, slots=True)
class Plan:
    """What writing one assessment takes, given what the server holds."""

    patient_id: str
    fingerprint: str
    action: Action
    written: Written
    entries: tuple[dict[str, Any], ...] = ()
    superseded: tuple[str, ...] = ()  # CarePlans revoked
    current: str | None = None  # the CarePlan already there ("unchanged")

    def describe(self) -> str:
        """One line for ``--dry-run``."""
        short = self.fingerprint[:12]
        if self.action == "unchanged":
            return f"Patient/{self.patient_id}: unchanged ({self.current}, assessment {short})"
        text = (
            f"Patient/{self.patient_id}: create RiskAssessment, CarePlan, Provenance "
            f"(assessment {short})"
        )
        if self.superseded:
            text += f"; revoke {', '.join(self.superseded)} and mark its RiskAssessment replaced"
        return text


@dataclass(slots=True)
class WriteOutcome:
    """What the server did with one patient's entries."""

    patient_id: str
    fingerprint: str
    action: Action
    ok: bool = True
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    risk_assessment: str | None = None
    care_plan: str | None = None
    error: str | None = None
    error_kind: str | None = None
    outcome: dict[str, Any] | None = None

    @property
    def wrote(self) -> bool:
        """Whether anything was created or changed on the server."""
        return bool(self.created or self.updated)


def plan_writes(
    client: FhirClient,
    written: Sequence[Written],
    options: FetchOptions = DEFAULT_FETCH,
) -> list[Plan]:
    """Plans for these built (and validated) resources from the server's current suggestions
    (1-2 searches)."""
    if not written:
        return []
    ids = [_patient_id(w.patient) for w in written]
    current = current_suggestions(client, ids, options)
    stale_fps = {
        fp
        for w, pid in zip(written, ids, strict=True)
        for plan in current[pid]
        for fp in [care_plan_fingerprint(plan)]
        if fp is not None and fp != w.ids.fingerprint
    }
    old_risks = (
        risk_assessments_by_identifier(client, sorted(stale_fps), options) if stale_fps else {}
    )
    return [make_plan(pid, w, current[pid], old_risks) for pid, w in zip(ids, written, strict=True)]


def make_plan(
    patient_id: str,
    written: Written,
    care_plans: Sequence[dict[str, Any]],
    risk_assessments: dict[str, dict[str, Any]],
) -> Plan:
    """The plan for one patient: ``care_plans`` are the draft fhir-cml CarePlans on the server,
    ``risk_assessments`` the RiskAssessments of their fingerprints."""
    fp = written.ids.fingerprint
    same = [p for p in care_plans if care_plan_fingerprint(p) == fp]
    stale = [p for p in care_plans if care_plan_fingerprint(p) != fp]
    if same and not stale:
        return Plan(patient_id, fp, "unchanged", written, current=local_reference(same[0]))
    entries = transaction_entries(written)
    if not stale:
        return Plan(patient_id, fp, "create", written, tuple(entries))
    successor = Successor(written.ids.risk_assessment, written.ids.care_plan)
    new_care_plan = written.care_plan
    updates: list[dict[str, Any]] = []
    for old in stale:
        old_fp = care_plan_fingerprint(old)
        old_risk = risk_assessments.get(old_fp) if old_fp else None
        if old_risk is not None:
            revoked, replaced, new_care_plan = supersede(old, old_risk, successor, new_care_plan)
            updates += [revoked, replaced]
        else:  # its RiskAssessment is gone: the CarePlan is still revoked and replaced
            revoked = copy.deepcopy(old)
            revoked["status"] = "revoked"
            superseded(revoked)
            updates.append(revoked)
            new_care_plan = replacing(new_care_plan, old)
    care_plan_entry = next(e for e in entries if e["fullUrl"] == written.ids.care_plan)
    care_plan_entry["resource"] = new_care_plan
    entries += update_entries(updates)
    return Plan(
        patient_id,
        fp,
        "supersede",
        written,
        tuple(entries),
        superseded=tuple(local_reference(p) for p in stale),
    )


class TransactionLimit:
    """How many patients the server takes in one transaction, learnt while writing.

    Some servers cap transactions that hold conditional creates (Medplum's engine: 8 entries,
    fewer than three patients). When a transaction is refused and both its halves are then
    accepted as they are, the refusal was about size, not content: the larger half becomes the
    limit for the rest of the run, so the splitting is paid once, not for every batch.
    Shared by the worker threads.
    """

    def __init__(self, patients: int | None = None) -> None:
        self.patients = patients
        self.learnt = False  # a size given is kept to; a size found out may change the mode
        self.settled = patients is not None
        self._lock = threading.Lock()
        self._probe = threading.Lock()

    @contextmanager
    def probing(self) -> Iterator[None]:
        """Until one group has shown what the server takes, one thread writes at a time, so
        that concurrent batches do not each pay for finding the limit."""
        if self.settled:
            yield
            return
        with self._probe:
            yield
            self.settled = True

    def too_small(self) -> bool:
        """Whether the server proved to take so few patients that batches are fewer requests."""
        return self.learnt and self.patients is not None and self.patients < AUTO_BATCH_BELOW

    def learn(self, patients: int) -> None:
        with self._lock:
            if self.patients is None or patients < self.patients:
                log.info("the server takes at most %d patients per transaction", patients)
                self.patients = patients
                self.learnt = True


def write_plans(
    client: FhirClient,
    plans: Sequence[Plan],
    *,
    mode: WriteMode = "auto",
    limit: TransactionLimit | None = None,
    max_entries: int = MAX_ENTRIES,
) -> list[WriteOutcome]:
    """Writes the plans' entries; ``mode`` says how (see :data:`WriteMode`)."""
    outcomes: dict[str, WriteOutcome] = {}
    pending: list[Plan] = []
    for plan in plans:
        if plan.action == "unchanged":
            outcome = WriteOutcome(plan.patient_id, plan.fingerprint, plan.action)
            outcome.care_plan = plan.current
            outcomes[plan.patient_id] = outcome
        else:
            pending.append(plan)
    limit = limit or TransactionLimit()
    with limit.probing() if mode != "batch" and pending else contextlib.nullcontext():
        written, _ = _write_transactions(client, pending, mode, limit, max_entries)
    for outcome in written:
        outcomes[outcome.patient_id] = outcome
    return [outcomes[p.patient_id] for p in plans]


def transaction(plans: Sequence[Plan]) -> dict[str, Any]:
    """The transaction Bundle of these plans' entries (the entries themselves, not copies:
    neither sending nor anything after modifies them)."""
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [e for p in plans for e in p.entries],
    }


def _write_transactions(
    client: FhirClient,
    plans: Sequence[Plan],
    mode: WriteMode,
    limit: TransactionLimit,
    max_entries: int,
) -> tuple[list[WriteOutcome], int | None]:
    """Writes plans group by group as the limit allows (in batches when the mode says so).

    Returns the outcomes and the largest group the server accepted as sent, or None when a
    group had to be split.
    """
    outcomes: list[WriteOutcome] = []
    largest: int | None = 0
    pending = list(plans)
    while pending:
        if mode == "batch" or (mode == "auto" and limit.too_small()):
            for group in _groups(pending, max_entries, None):
                outcomes += _write_batches(client, group)
            return outcomes, largest
        group = _groups(pending, max_entries, limit.patients)[0]
        pending = pending[len(group) :]
        written, accepted = _write_group(client, group, mode, limit, max_entries)
        outcomes += written
        largest = None if accepted is None or largest is None else max(largest, accepted)
    return outcomes, largest


def _write_group(
    client: FhirClient,
    group: Sequence[Plan],
    mode: WriteMode,
    limit: TransactionLimit,
    max_entries: int,
) -> tuple[list[WriteOutcome], int | None]:
    """One transaction; on refusal, its halves (what the first half teaches applies to the
    second). Returns the outcomes and the group size when accepted as sent, else None."""
    try:
        response = client.transaction(transaction(group))
    except FhirHttpError as err:
        if 400 <= err.status < 500 and len(group) > 1:
            middle = len(group) // 2
            log.info(
                "transaction of %d patients refused (HTTP %d); splitting it to find the cause",
                len(group),
                err.status,
            )
            left, left_size = _write_group(client, group[:middle], mode, limit, max_entries)
            right, right_size = _write_transactions(
                client, group[middle:], mode, limit, max_entries
            )
            if left_size and right_size and all(o.ok for o in left + right):
                limit.learn(max(left_size, right_size))
            return left + right, None
        return [_failed(p, err) for p in group], None
    except FhirClientError as err:
        return [_failed(p, err) for p in group], None
    return _read_response(group, response), len(group)


def _write_batches(client: FhirClient, group: Sequence[Plan]) -> list[WriteOutcome]:
    """Three batches in dependency order, for servers that cap transactions.

    Batch entries are independent and may not refer to each other (FHIR), so what the
    transaction links through ``urn:uuid`` fullUrls is written in steps, each step's references
    rewritten to what the previous one created: (1) the RiskAssessments; (2) the CarePlans and
    the superseding updates; (3) the Provenances. Every entry is a conditional create (or an
    ``If-Match`` update), so a step repeated after a failure creates nothing twice; a patient
    whose entry fails in one step is left out of the next and reported, and the next run
    completes it (the plan is made again from what the server holds).
    """
    outcomes = {p.patient_id: WriteOutcome(p.patient_id, p.fingerprint, p.action) for p in group}
    resolved: dict[str, str] = {}
    steps: list[Callable[[Plan, dict[str, Any]], bool]] = [
        lambda plan, e: e.get("fullUrl") == plan.written.ids.risk_assessment,
        lambda plan, e: (
            e.get("fullUrl")
            not in (
                plan.written.ids.risk_assessment,
                plan.written.ids.provenance,
            )
        ),
        lambda plan, e: e.get("fullUrl") == plan.written.ids.provenance,
    ]
    alive = list(group)
    for step in steps:
        sent: list[tuple[Plan, dict[str, Any]]] = [
            (plan, _resolved(entry, resolved))
            for plan in alive
            for entry in plan.entries
            if step(plan, entry)
        ]
        if not sent:
            continue
        bundle = {"resourceType": "Bundle", "type": "batch", "entry": [e for _, e in sent]}
        try:
            response = client.batch(bundle)
        except FhirClientError as err:
            for plan in alive:
                failed = _failed(plan, err)
                failed.created = outcomes[plan.patient_id].created
                outcomes[plan.patient_id] = failed
            return [outcomes[p.patient_id] for p in group]
        for (plan, entry), got in zip(sent, response.get("entry") or [], strict=True):
            outcome = outcomes[plan.patient_id]
            location = _record_entry(outcome, plan, entry, got)
            if location and entry.get("fullUrl"):
                resolved[str(entry["fullUrl"])] = location
        alive = [p for p in alive if outcomes[p.patient_id].ok]
    return [outcomes[p.patient_id] for p in group]


def _resolved(entry: dict[str, Any], resolved: dict[str, str]) -> dict[str, Any]:
    """The entry with its references to earlier steps' fullUrls naming what was created.

    A new entry: what changes is copied, what does not is shared with the plan's entry (neither
    is modified afterwards), so a resource without such references costs no copy.
    """
    out = dict(entry)
    out["resource"] = (
        _rewrite_references(entry["resource"], resolved) if resolved else entry["resource"]
    )
    request = entry.get("request") or {}
    risk = out["resource"].get("target", [{}])[0].get("reference", "")
    if out["resource"].get("resourceType") == "Provenance" and risk.startswith("RiskAssessment/"):
        # The RiskAssessment is known by now: "the Provenance of RiskAssessment/x" is the same
        # condition as the chained one on its identifier, and a plain reference search is far
        # cheaper for servers that scan (no chain to resolve per candidate).
        out["request"] = {**request, "ifNoneExist": f"target={risk}"}
    return out


def _rewrite_references(value: Any, resolved: dict[str, str]) -> Any:
    """``value`` with each ``reference`` found in ``resolved`` replaced; the parts without one
    are the same objects, not copies."""
    if isinstance(value, dict):
        changed: dict[str, Any] | None = None
        for key, item in value.items():
            if key == "reference" and isinstance(item, str):
                new = resolved.get(item, item)
            elif isinstance(item, dict | list):
                new = _rewrite_references(item, resolved)
            else:
                continue
            if new is not item:
                if changed is None:
                    changed = dict(value)
                changed[key] = new
        return value if changed is None else changed
    if isinstance(value, list):
        items = [_rewrite_references(item, resolved) for item in value]
        return value if all(new is old for new, old in zip(items, value, strict=True)) else items
    return value


def _read_response(group: Sequence[Plan], response: dict[str, Any]) -> list[WriteOutcome]:
    entries = response.get("entry") or []
    outcomes = []
    at = 0
    for plan in group:
        mine = entries[at : at + len(plan.entries)]
        at += len(plan.entries)
        outcome = WriteOutcome(plan.patient_id, plan.fingerprint, plan.action)
        for sent, got in zip(plan.entries, mine, strict=True):
            _record_entry(outcome, plan, sent, got)
        outcomes.append(outcome)
    return outcomes


def _record_entry(outcome: WriteOutcome, plan: Plan, sent: dict[str, Any], got: Any) -> str | None:
    """Notes what the server did with one entry; returns the location it reported."""
    result = got.get("response") if isinstance(got, dict) else None
    status = _status(result)
    request = sent["request"]
    resource_type = str(request["url"]).split("/")[0].split("?")[0]
    if status is None or status >= 400:
        detail = result.get("outcome") if isinstance(result, dict) else None
        text = outcome_text(detail) if isinstance(detail, dict) else "no status given"
        outcome.ok = False
        outcome.error = (
            f"the server refused {request['method']} {resource_type} (HTTP {status or '?'}): {text}"
        )
        outcome.error_kind = f"HTTP {status or '?'} for one entry"
        outcome.outcome = detail if isinstance(detail, dict) else None
        return None
    location = _location(result)
    if request["method"] == "PUT":
        outcome.updated.append(location or str(request["url"]))
    elif status == 201:
        outcome.created.append(location or resource_type)
    else:
        outcome.existing.append(location or resource_type)
    if sent.get("fullUrl") == plan.written.ids.risk_assessment:
        outcome.risk_assessment = location
    elif sent.get("fullUrl") == plan.written.ids.care_plan:
        outcome.care_plan = location
    return location


def _failed(plan: Plan, err: FhirClientError) -> WriteOutcome:
    outcome = WriteOutcome(plan.patient_id, plan.fingerprint, plan.action, ok=False)
    outcome.error = err.message
    outcome.error_kind = _error_kind(err)
    outcome.outcome = err.outcome
    return outcome


def _error_kind(err: FhirClientError) -> str:
    """A short, patient-free label to count errors by in the summary."""
    if isinstance(err, FhirResponseError):
        return "unexpected answer from the server"
    if isinstance(err, FhirHttpError):
        return f"HTTP {err.status} for a transaction"
    return type(err).__name__.removeprefix("Fhir").replace("Error", " error").strip().lower()


def _groups(plans: Sequence[Plan], max_entries: int, patients: int | None) -> list[list[Plan]]:
    groups: list[list[Plan]] = []
    current: list[Plan] = []
    size = 0
    for plan in plans:
        full = patients is not None and len(current) >= patients
        if current and (full or size + len(plan.entries) > max_entries):
            groups.append(current)
            current, size = [], 0
        current.append(plan)
        size += len(plan.entries)
    if current:
        groups.append(current)
    return groups


def _status(response: Any) -> int | None:
    if not isinstance(response, dict):
        return None
    text = str(response.get("status", "")).strip()
    head = text.split(" ", 1)[0]
    return int(head) if head.isdigit() else None


def _location(response: Any) -> str | None:
    """``Type/id`` from ``response.location`` (absolute or relative, with or without history)."""
    if not isinstance(response, dict):
        return None
    location = response.get("location")
    if not isinstance(location, str) or not location:
        return None
    text = location.split("/_history/", 1)[0]
    parts = [p for p in text.split("/") if p]
    return "/".join(parts[-2:]) if len(parts) >= 2 else None


def care_plan_fingerprint(care_plan: dict[str, Any]) -> str | None:
    """The assessment fingerprint a fhir-cml CarePlan carries as its identifier."""
    for ident in care_plan.get("identifier") or []:
        if isinstance(ident, dict) and ident.get("system") == c.ID_CARE_PLAN:
            value = ident.get("value")
            return value if isinstance(value, str) else None
    return None


def _patient_id(key: str) -> str:
    return key.split("/", 1)[1] if key.startswith("Patient/") else key
