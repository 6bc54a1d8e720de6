"""Writing suggestions to a FHIR server so that every patient ends with exactly one current
suggestion, whatever the server does.

**The invariant**, per patient: one current RiskAssessment of fhir-cml's (no ``replaced-by``),
one draft CarePlan of the same assessment pointing to it (``supportingInfo``) and to the requests
it proposes (``activity.reference``: ServiceRequest, MedicationRequest, RequestGroup, draft with
intent proposal), a Provenance targeting them; every earlier RiskAssessment ``replaced-by`` a
later one, every earlier draft revoked with its draft requests (revoked; a MedicationRequest
cancelled); nothing twice (conditional creates on the assessment fingerprint, and on
``<fingerprint>-<what>`` for a request); no Provenance or CarePlan pointing to something that is
not there.

**Decided from what the server holds.** Writing starts from fhir-cml's resources of the patients
as read (:class:`Held`: the drafts with the requests they propose, and the RiskAssessments by
identifier, or all of them and every draft request when there is no telling which to look for)
and moves each patient one dependency layer at a time
towards its target assessment (:func:`next_changes`):

1. the reading: its RiskAssessment is created, and the requests the suggestion proposes (they
   refer to nothing else written) are created, or put back to draft where fhir-cml withdrew
   them;
2. the suggestion: its CarePlan is created, pointing to the RiskAssessment and the requests by
   their server ids; a suggestion that was superseded and comes back (A -> B -> A) is put back to
   draft (its requests were in the layer before), then its RiskAssessment loses its
   ``replaced-by``;
3. the record: the Provenance of them all is created (only now that they exist), and every other
   current RiskAssessment of the patient is marked ``replaced-by`` this one;
4. the clean-up: every other draft CarePlan is revoked, and every other draft request of
   fhir-cml's withdrawn (revoked; a MedicationRequest cancelled), whether a CarePlan proposes it
   or an interrupted write left it behind - last, so that while one is a draft, the reading it
   points to can be found through it.

One round sends, for every unfinished patient of a group, the entries of its next layer, in one
batch (a transaction with ``mode="transaction"``); an entry depends only on what earlier rounds
made. A server that runs entries independently (a batch, or a transaction it processes as one),
refuses some (validation, serialization failures), answers without a body, or is interrupted,
leaves a patient part-way along this path at worst, and the next round, or the next run,
continues from what the server holds. The new suggestion exists before the old one is revoked,
so a patient never loses a current suggestion.

**Answers are not relied upon.** A 201 with a location says what was made and where; a 200 to a
conditional create (it was there already), an answer without a version, or no readable answer at
all (an empty body) make the resources concerned be read again, by identifier, before the next
round. Per entry: 409/412 (changed meanwhile) read again and plan again; 429 and 5xx are tried
again (a conditional create or a versioned update is harmless to repeat) up to
``ENTRY_ATTEMPTS`` times; other 4xx fail the patient with the server's OperationOutcome text,
and its later layers are not attempted. A bundle refused as a whole (4xx) is split in halves
until the patient it refuses is found; a size limit learnt that way is kept
(:class:`TransactionLimit`).

**Decisions made in the EHR are kept.** A suggestion a clinician withdrew (its CarePlan revoked
while its reading was not superseded) is not proposed again for the same reading unless a
clinician accepts it explicitly; a CarePlan moved on in the EHR (active, completed,
entered-in-error) is left alone.

The application service (:mod:`fhir_cml.app`) builds and validates the resources and calls these
for every face.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from fhir_cml.ehr.client import FhirClient, outcome_text
from fhir_cml.ehr.fetch import (
    DEFAULT_FETCH,
    REQUEST_TYPES,
    FetchOptions,
    assessments_of,
    draft_requests,
    draft_suggestions,
    patient_id_of,
    requests_by_key,
    suggestions_by_identifier,
)
from fhir_cml.errors import FhirClientError, FhirHttpError, FhirResponseError
from fhir_cml.fhir import canonical as c
from fhir_cml.fhir.outbound import Written
from fhir_cml.fhir.outbound.care_plan import proposal_keys
from fhir_cml.fhir.outbound.identifiers import if_none_exist
from fhir_cml.fhir.outbound.narrative import SUPERSEDED
from fhir_cml.fhir.outbound.requests import (
    key_fingerprint,
    request_key,
    with_status,
    withdrawn_status,
)
from fhir_cml.fhir.outbound.supersede import (
    local_reference,
    replaced,
    replaced_by,
    revoked,
    update_entry,
)

log = logging.getLogger(__name__)

# What writing one patient's assessment came to: the suggestion was already there (unchanged),
# written anew (create), written over an earlier one (supersede), completed from a part-written
# state (repair), put back after being superseded (reinstate); or nothing was written because a
# clinician withdrew this suggestion (withdrawn) or the EHR moved it on (decided). ``revoke`` and
# ``accept``: a clinician's decision recorded (fhir_cml.app.revoke, fhir_cml.app.accept).
Action = Literal[
    "create",
    "supersede",
    "unchanged",
    "repair",
    "reinstate",
    "withdrawn",
    "decided",
    "revoke",
    "accept",
]
# batch: every round in one batch per group (the default; ``auto`` is the same). transaction:
# every round as a transaction, for servers that take transactions only.
WriteMode = Literal["auto", "transaction", "batch"]
MAX_ENTRIES: Final = 500  # entries per bundle
ENTRY_ATTEMPTS: Final = 3  # tries of an entry that failed for a transient reason
MAX_ROUNDS: Final = 12  # rounds per group: four layers, and the retries
# CarePlan statuses a clinician or the EHR gives; fhir-cml only ever writes draft and revoked.
_DECIDED: Final = frozenset({"active", "on-hold", "completed", "entered-in-error", "unknown"})
_NOT_CURRENT_RISK: Final = frozenset({"entered-in-error", "cancelled"})


# --- what the server holds -----------------------------------------------------------------------


@dataclass(slots=True)
class Held:
    """fhir-cml's resources of one patient as read from the server: RiskAssessments and
    CarePlans by assessment fingerprint (their identifier value), the Provenances that target
    them, by id, and the requests the CarePlans propose, by identifier value."""

    risks: dict[str, dict[str, Any]] = field(default_factory=dict)
    plans: dict[str, dict[str, Any]] = field(default_factory=dict)
    provenances: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: dict[str, dict[str, Any]] = field(default_factory=dict)  # by <fingerprint>-<what>

    def copy(self) -> Held:
        return Held(dict(self.risks), dict(self.plans), dict(self.provenances), dict(self.requests))

    def provenance(self, *targets: str, who: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """A Provenance targeting all of ``targets`` (any version), with ``who`` as an agent."""
        for prov in self.provenances.values():
            named = {_unversioned(t.get("reference", "")) for t in prov.get("target") or []}
            if not set(targets) <= named:
                continue
            if who is None or any(a.get("who") == who for a in prov.get("agent") or []):
                return prov
        return None

    def refs(self) -> dict[str, str]:
        """``Type/id`` of every RiskAssessment and CarePlan held, to its fingerprint."""
        out = {}
        for fp, resource in (*self.risks.items(), *self.plans.items()):
            if resource.get("id"):
                out[local_reference(resource)] = fp
        return out


@dataclass(frozen=True, slots=True)
class Target:
    """The suggestion one patient should end with: ``written`` (built and validated, linked
    through ``urn:uuid`` fullUrls). ``accept``: a clinician's explicit decision, which puts back
    a suggestion withdrawn earlier (fhir_cml.app.accept then records the acceptance)."""

    patient_id: str
    written: Written
    accept: bool = False

    @property
    def fingerprint(self) -> str:
        return self.written.ids.fingerprint


@dataclass(frozen=True, slots=True)
class Hint:
    """What a caller knows about a patient's earlier writes: ``fingerprints`` to look for
    besides the target's and the drafts' (the last one written), or ``deep``: read every
    RiskAssessment of the patient (nothing is known, or the last run was interrupted).

    ``interrupted``: with ``deep``, an earlier write of the patient may have stopped part-way,
    so the draft requests of fhir-cml's are read even when no reading of fhir-cml's is there
    (a write stopped after its first layer leaves proposals that no CarePlan names). False
    only when the caller knows its earlier writes all finished (the sync job, for a patient
    its state store has never seen): then they are read only for a patient with a reading."""

    fingerprints: tuple[str, ...] = ()
    deep: bool = True
    interrupted: bool = True


DEEP: Final = Hint()


# --- what to do next (pure) ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Change:
    """One bundle entry and what it is for."""

    kind: Literal[
        "create-risk",
        "create-request",
        "create-plan",
        "reinstate-request",
        "reinstate-plan",
        "reinstate-risk",
        "provenance",
        "replace-risk",
        "revoke-plan",
        "withdraw-request",
    ]
    fingerprint: str  # of the resource concerned (the target's for a Provenance; a request's key)
    entry: dict[str, Any]

    @property
    def resource_type(self) -> str:
        return str(self.entry["resource"]["resourceType"])

    def describe(self) -> str:
        where = self.entry["request"]["url"]
        return {
            "create-risk": "create RiskAssessment",
            "create-request": f"create {self.resource_type}",
            "create-plan": "create CarePlan",
            "reinstate-request": f"put {where} back to draft",
            "reinstate-plan": f"put {where} back to draft",
            "reinstate-risk": f"make {where} current again",
            "provenance": "create Provenance",
            "replace-risk": f"mark {where} replaced",
            "revoke-plan": f"revoke {where}",
            "withdraw-request": f"withdraw {where}",
        }[self.kind]


State = Literal["pending", "current", "withdrawn", "decided"]


def next_changes(target: Target, held: Held) -> tuple[list[Change], State]:
    """The entries of the patient's next layer (see the module's description) and where the
    patient stands: ``pending`` while there are entries, else ``current`` (the target is the
    current suggestion), ``withdrawn`` or ``decided`` (the EHR's decision is kept)."""
    w = target.written
    fp = target.fingerprint
    risk = held.risks.get(fp)
    plan = held.plans.get(fp)
    superseded = risk is not None and replaced_by(risk) is not None
    status = plan.get("status") if plan is not None else None
    # The CarePlan is to be written (created, or put back to draft): first its reading and the
    # requests it proposes must be there, as drafts.
    writing = plan is None or (status == "revoked" and (superseded or target.accept))
    first = [] if risk is not None else [_create_risk(w)]
    if writing:
        first += _requests_first(w, held)
    if first:
        return first, "pending"
    assert risk is not None
    risk_ref = local_reference(risk)
    requests = {
        r.url: local_reference(held.requests[key])
        for r in w.requests
        for key in [_key(r.resource)]
        if key in held.requests
    }
    if plan is None:
        stale = [p for f, p in held.plans.items() if f != fp and p.get("status") == "draft"]
        care_plan = _pointing(w.care_plan, risk_ref, requests)
        if stale:
            care_plan["replaces"] = [{"reference": local_reference(p)} for p in stale]
        entry = _create(w.ids.care_plan, care_plan, if_none_exist(c.ID_CARE_PLAN, fp))
        return [Change("create-plan", fp, entry)], "pending"
    if writing:
        # Back to draft with this run's content, keeping what it replaced when first written
        # (a CarePlan does not "replace" the one that replaced it: no cycles).
        care_plan = _pointing(w.care_plan, risk_ref, requests)
        care_plan.pop("replaces", None)
        care_plan.update(_kept(plan, "replaces"))
        return [Change("reinstate-plan", fp, update_entry(_as(plan, care_plan)))], "pending"
    if superseded:
        return [Change("reinstate-risk", fp, update_entry(_as(risk, w.risk_assessment)))], "pending"
    if risk.get("status") in _NOT_CURRENT_RISK:
        return [], "decided"  # the EHR says this reading is wrong: nothing else is touched
    plan_ref = local_reference(plan)
    state: State = "current"
    if status == "revoked":
        state = "withdrawn"
    elif status != "draft":
        state = "decided"
    changes: list[Change] = []
    if held.provenance(risk_ref, plan_ref) is None:
        provenance = dict(
            w.provenance,
            target=[{"reference": ref} for ref in (risk_ref, plan_ref, *requests.values())],
        )
        changes.append(Change("provenance", fp, _create(None, provenance, f"target={risk_ref}")))
    for other, old in sorted(held.risks.items()):
        if other != fp and _current_risk(old):
            changes.append(Change("replace-risk", other, update_entry(replaced(old, risk_ref))))
    if changes:
        return changes, "pending"
    drafts = sorted((f, p) for f, p in held.plans.items() if f != fp and p.get("status") == "draft")
    proposed = sorted(
        (k, r)
        for k, r in held.requests.items()
        if key_fingerprint(k) != fp and r.get("status") == "draft"
    )
    if drafts or proposed:
        return [
            *(Change("revoke-plan", f, update_entry(revoked(p))) for f, p in drafts),
            *(
                Change("withdraw-request", k, update_entry(with_status(r, "withdrawn", SUPERSEDED)))
                for k, r in proposed
            ),
        ], "pending"
    return [], state


def _create(
    full_url: str | None, resource: dict[str, Any], condition: str | None
) -> dict[str, Any]:
    request: dict[str, Any] = {"method": "POST", "url": resource["resourceType"]}
    if condition:
        request["ifNoneExist"] = condition
    entry: dict[str, Any] = {"resource": resource, "request": request}
    if full_url:
        entry["fullUrl"] = full_url
    return entry


def _create_risk(w: Written) -> Change:
    fp = w.ids.fingerprint
    entry = _create(w.ids.risk_assessment, w.risk_assessment, if_none_exist(c.ID_ASSESSMENT, fp))
    return Change("create-risk", fp, entry)


def _requests_first(w: Written, held: Held) -> list[Change]:
    """The requests the CarePlan about to be written proposes: created where missing, put back
    to draft where fhir-cml withdrew them (superseded, or a proposal left without its CarePlan);
    one the EHR moved on (accepted, completed, entered in error) is left as it is."""
    changes = []
    for r in w.requests:
        key = _key(r.resource)
        there = held.requests.get(key)
        if there is None:
            entry = _create(r.url, r.resource, if_none_exist(c.ID_REQUEST, key))
            changes.append(Change("create-request", key, entry))
        elif there.get("status") == withdrawn_status(str(there.get("resourceType"))):
            changes.append(Change("reinstate-request", key, update_entry(_as(there, r.resource))))
    return changes


def _pointing(
    care_plan: dict[str, Any], risk_ref: str, requests: Mapping[str, str]
) -> dict[str, Any]:
    """A copy of the built CarePlan whose ``supportingInfo`` names the RiskAssessment's id and
    whose activities name the requests' ids (``requests``: fullUrl -> ``Type/id``)."""
    out = dict(care_plan, supportingInfo=[{"reference": risk_ref}])
    if requests and "activity" in out:
        out["activity"] = [
            dict(a, reference=dict(a["reference"], reference=requests[a["reference"]["reference"]]))
            if "reference" in a
            else a
            for a in out["activity"]
        ]
    return out


def _key(request: dict[str, Any]) -> str:
    """The identifier value of a request fhir-cml built (it always has one)."""
    key = request_key(request)
    assert key is not None
    return key


def _as(held: dict[str, Any], fresh: dict[str, Any]) -> dict[str, Any]:
    """``fresh`` content under the id and version of the resource ``held`` on the server."""
    out = copy.deepcopy(fresh)
    out["id"] = held["id"]
    meta = dict(out.get("meta") or {})
    version = (held.get("meta") or {}).get("versionId")
    if version:
        meta["versionId"] = version
    if meta:
        out["meta"] = meta
    return out


def _kept(resource: dict[str, Any], *names: str) -> dict[str, Any]:
    return {n: copy.deepcopy(resource[n]) for n in names if n in resource}


def _current_risk(risk: dict[str, Any]) -> bool:
    return replaced_by(risk) is None and risk.get("status") not in _NOT_CURRENT_RISK


def _has_agent(resource: dict[str, Any], who: dict[str, Any]) -> bool:
    return any(a.get("who") == who for a in resource.get("agent") or [])


# --- plans ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class Plan:
    """What writing one patient's target takes, given what the server holds: ``changes`` is
    every entry of every layer, as they would go if the server took them all."""

    target: Target
    held: Held
    action: Action
    changes: tuple[Change, ...] = ()
    state: State = "current"

    @property
    def patient_id(self) -> str:
        return self.target.patient_id

    @property
    def fingerprint(self) -> str:
        return self.target.fingerprint

    @property
    def written(self) -> Written:
        return self.target.written

    @property
    def current(self) -> str | None:
        """The target's CarePlan when it is on the server already."""
        plan = self.held.plans.get(self.fingerprint)
        return local_reference(plan) if plan is not None else None

    @property
    def superseded(self) -> tuple[str, ...]:
        """The drafts this write revokes."""
        return tuple(c.entry["request"]["url"] for c in self.changes if c.kind == "revoke-plan")

    def describe(self) -> str:
        """One line for ``--dry-run``."""
        short = self.fingerprint[:12]
        head = f"Patient/{self.patient_id}"
        if not self.changes:
            why = {
                "withdrawn": "withdrawn by a clinician; not proposed again",
                "decided": "moved on in the EHR; left alone",
            }.get(self.state, f"unchanged ({self.current}")
            return f"{head}: {why}, assessment {short}" + (")" if self.state == "current" else "")
        created = [c.resource_type for c in self.changes if c.kind.startswith("create")]
        created += ["Provenance"] * sum(c.kind == "provenance" for c in self.changes)
        parts = [f"create {', '.join(created)}"] if created else []
        parts += [c.describe() for c in self.changes if not c.kind.startswith("create")]
        parts = [p for p in parts if p != "create Provenance" or not created]
        return f"{head}: {'; '.join(parts)} (assessment {short})"


def make_plan(target: Target, held: Held) -> Plan:
    """The plan for one patient: its changes, found by playing the layers through on a copy of
    what is held as if the server took every entry."""
    play = held.copy()
    changes: list[Change] = []
    state: State = "pending"
    for _ in range(8):
        step, state = next_changes(target, play)
        if not step:
            break
        changes += step
        for n, change in enumerate(step):
            _assume(play, change, f"(new {len(changes)}.{n})")
    return Plan(target, held, _action(held, target, changes), tuple(changes), state)


def _assume(held: Held, change: Change, new_id: str) -> None:
    """``held`` as it would be had the server taken ``change`` as sent."""
    resource = dict(change.entry["resource"])
    resource.setdefault("id", new_id)
    if change.resource_type == "Provenance":
        held.provenances[str(resource["id"])] = resource
    elif change.resource_type in REQUEST_TYPES:
        held.requests[change.fingerprint] = resource
    elif change.resource_type == "RiskAssessment":
        held.risks[change.fingerprint] = resource
    else:
        held.plans[change.fingerprint] = resource


def _action(held: Held, target: Target, changes: Sequence[Change]) -> Action:
    kinds = {c.kind for c in changes}
    if not changes:
        plan = held.plans.get(target.fingerprint)
        if plan is not None and plan.get("status") == "revoked":
            return "withdrawn"
        return "unchanged" if plan is None or plan.get("status") == "draft" else "decided"
    if kinds & {"reinstate-plan", "reinstate-risk"}:
        return "reinstate"
    if kinds & {"replace-risk", "revoke-plan", "withdraw-request"}:
        return "supersede"
    return "create" if "create-risk" in kinds else "repair"


def plan_writes(
    client: FhirClient,
    targets: Sequence[Target],
    options: FetchOptions = DEFAULT_FETCH,
    hints: Mapping[str, Hint] | None = None,
) -> list[Plan]:
    """Plans for these targets from what the server holds (for a group of patients: the drafts,
    and the RiskAssessments by identifier; without a hint all of them and, where a write may
    have been interrupted, the draft requests, one search per request type; one more when a
    target's reading is there without its draft)."""
    if not targets:
        return []
    held = read_held(client, targets, options, hints or {})
    return [make_plan(t, held[t.patient_id]) for t in targets]


def read_held(
    client: FhirClient,
    targets: Sequence[Target],
    options: FetchOptions = DEFAULT_FETCH,
    hints: Mapping[str, Hint] | None = None,
) -> dict[str, Held]:
    """fhir-cml's resources of these targets' patients that writing them concerns."""
    hints = hints or {}
    ids = [t.patient_id for t in targets]
    held = {pid: Held() for pid in ids}
    drafts = draft_suggestions(client, ids, options)
    _file(held, drafts)
    # The requests of a CarePlan a CDS client created name no id: found by their identifiers.
    _file(held, requests_by_key(client, _named_only(drafts, held), options))
    deep = [t.patient_id for t in targets if hints.get(t.patient_id, DEEP).deep]
    _file(held, assessments_of(client, deep, options))
    # The proposals an interrupted write may have left behind, without a CarePlan naming them.
    strays = [
        pid
        for pid in deep
        if hints.get(pid, DEEP).interrupted or held[pid].risks or held[pid].plans
    ]
    _file(held, draft_requests(client, strays, options))
    wanted = {
        fp
        for t in targets
        if not hints.get(t.patient_id, DEEP).deep
        for fp in (
            t.fingerprint,
            *held[t.patient_id].plans,
            *hints.get(t.patient_id, DEEP).fingerprints,
        )
    }
    if wanted:
        _file(held, suggestions_by_identifier(client, "RiskAssessment", wanted, options))
    # A reading there without its draft: superseded, withdrawn, or its CarePlan never written.
    lone = [
        t.fingerprint
        for t in targets
        if t.fingerprint in held[t.patient_id].risks
        and t.fingerprint not in held[t.patient_id].plans
    ]
    if lone:
        _file(held, suggestions_by_identifier(client, "CarePlan", lone, options))
    return held


def _named_only(found: Iterable[dict[str, Any]], held: Mapping[str, Held]) -> set[tuple[str, str]]:
    """(type, key) of the requests the CarePlans found name by identifier, not yet held."""
    return {
        (kind, key)
        for plan in found
        if plan.get("resourceType") == "CarePlan"
        for kind, key in proposal_keys(plan)
        if not any(key in h.requests for h in held.values())
    }


def _file(held: dict[str, Held], resources: Iterable[dict[str, Any]]) -> None:
    """Sorts resources found into ``held``: fhir-cml's RiskAssessments and CarePlans by patient
    and fingerprint, its requests by identifier value (the one with the lowest id if a server
    holds two), then the Provenances that target them."""
    provenances = []
    for resource in resources:
        kind = resource.get("resourceType")
        if kind == "Provenance":
            provenances.append(resource)
            continue
        if kind in REQUEST_TYPES:
            _file_request(held, resource)
            continue
        system = {"RiskAssessment": c.ID_ASSESSMENT, "CarePlan": c.ID_CARE_PLAN}.get(str(kind))
        fp = _identifier(resource, system) if system else None
        pid = patient_id_of(resource)
        if fp is None or pid not in held or not resource.get("id"):
            continue
        by_fp = held[pid].risks if kind == "RiskAssessment" else held[pid].plans
        there = by_fp.get(fp)
        if there is None or str(resource["id"]) <= str(there["id"]):
            by_fp[fp] = resource
    owners = {ref: pid for pid, h in held.items() for ref in h.refs()}
    for prov in provenances:
        for target in prov.get("target") or []:
            pid = owners.get(_unversioned(str(target.get("reference", ""))))
            if pid is not None and prov.get("id"):
                held[pid].provenances[str(prov["id"])] = prov
                break


def _file_request(held: dict[str, Held], resource: dict[str, Any]) -> None:
    key = request_key(resource)
    pid = patient_id_of(resource)
    if key is None or pid not in held or not resource.get("id"):
        return
    there = held[pid].requests.get(key)
    if there is None or str(resource["id"]) <= str(there["id"]):
        held[pid].requests[key] = resource


def _identifier(resource: dict[str, Any], system: str) -> str | None:
    for ident in resource.get("identifier") or []:
        if isinstance(ident, dict) and ident.get("system") == system:
            value = ident.get("value")
            return value if isinstance(value, str) else None
    return None


def care_plan_fingerprint(care_plan: dict[str, Any]) -> str | None:
    """The assessment fingerprint a fhir-cml CarePlan carries as its identifier."""
    return _identifier(care_plan, c.ID_CARE_PLAN)


# --- writing -------------------------------------------------------------------------------------


@dataclass(slots=True)
class WriteOutcome:
    """What writing did for one patient: resources created (``Type/id``), already there,
    updated (``withdrawn``: those of them a clinician's decision revoked or cancelled); the
    target's RiskAssessment and CarePlan; or the error, its kind (for the summary's counts) and
    the server's OperationOutcome."""

    patient_id: str
    fingerprint: str
    action: Action
    ok: bool = True
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    withdrawn: list[str] = field(default_factory=list)
    risk_assessment: str | None = None
    care_plan: str | None = None
    error: str | None = None
    error_kind: str | None = None
    outcome: dict[str, Any] | None = None

    @property
    def wrote(self) -> bool:
        """Whether anything was created or changed on the server."""
        return bool(self.created or self.updated)


class TransactionLimit:
    """How much the server takes in one bundle: ``patients`` as configured
    (``--transaction-size``), ``entries`` as learnt while writing.

    Some servers cap bundles (Medplum's engine: transactions of more than 8 entries holding
    conditional creates). When a bundle is refused and both its halves are then accepted as
    they are, the refusal was about size, not content: the larger half's number of entries
    becomes the limit for the rest of the run, so the splitting is paid once. Entries, not
    patients: a patient's first layer holds its reading and the requests it proposes, the
    later ones mostly one entry. Shared by the worker threads.
    """

    def __init__(self, patients: int | None = None) -> None:
        self.patients = patients
        self.entries: int | None = None
        self.settled = patients is not None
        self._lock = threading.Lock()
        self._probe = threading.Lock()

    @contextmanager
    def probing(self) -> Iterator[None]:
        """Until one group has shown what the server takes, one thread writes at a time, so
        that concurrent groups do not each pay for finding the limit."""
        if self.settled:
            yield
            return
        with self._probe:
            yield
            self.settled = True

    def learn(self, entries: int) -> None:
        with self._lock:
            if self.entries is None or entries < self.entries:
                log.info("the server takes at most %d entries per bundle", entries)
                self.entries = entries


@dataclass(slots=True)
class _Patient:
    """One patient while its plan is carried out."""

    plan: Plan
    held: Held
    outcome: WriteOutcome
    attempts: int = 0  # transient failures since the patient last made progress
    done: bool = False
    stale_risks: set[str] = field(default_factory=set)  # fingerprints to read again
    stale_plans: set[str] = field(default_factory=set)
    stale_requests: dict[str, set[str]] = field(default_factory=dict)  # type -> keys

    def stale(self, resource_type: str) -> set[str]:
        if resource_type == "RiskAssessment":
            return self.stale_risks
        if resource_type == "CarePlan":
            return self.stale_plans
        return self.stale_requests.setdefault(resource_type, set())


def write_plans(
    client: FhirClient,
    plans: Sequence[Plan],
    *,
    mode: WriteMode = "auto",
    limit: TransactionLimit | None = None,
    max_entries: int = MAX_ENTRIES,
    options: FetchOptions = DEFAULT_FETCH,
) -> list[WriteOutcome]:
    """Carries the plans out, round by round (see the module's description); one outcome per
    plan, in order. Failures are reported on the patient's outcome, never raised."""
    kind = "transaction" if mode == "transaction" else "batch"
    limit = limit or TransactionLimit()
    patients = [
        _Patient(p, p.held.copy(), WriteOutcome(p.patient_id, p.fingerprint, p.action))
        for p in plans
    ]
    busy = [p for p in patients if p.plan.changes]
    for p in patients:
        p.done = not p.plan.changes
    with limit.probing() if kind == "transaction" and busy else nullcontext():
        for _ in range(MAX_ROUNDS):
            active = [p for p in busy if not p.done]
            _refresh(client, active, options)
            round_: list[tuple[_Patient, list[Change]]] = []
            for p in active:
                if p.done:  # failed while being read again
                    continue
                changes, _state = next_changes(p.plan.target, p.held)
                if changes:
                    round_.append((p, changes))
                else:
                    p.done = True
            if not round_:
                break
            entries = min(max_entries, limit.entries or max_entries)
            for group in _groups(
                round_,
                entries if kind == "transaction" else max_entries,
                limit.patients if kind == "transaction" else None,
            ):
                _send(client, group, kind, limit)
        for p in busy:
            if not p.done:
                _fail(p, "the suggestion did not settle after repeated attempts", "write error")
    for p in patients:
        _conclude(p)
    return [p.outcome for p in patients]


def _groups(
    items: Sequence[tuple[_Patient, list[Change]]], max_entries: int, patients: int | None
) -> list[list[tuple[_Patient, list[Change]]]]:
    groups: list[list[tuple[_Patient, list[Change]]]] = []
    current: list[tuple[_Patient, list[Change]]] = []
    size = 0
    for item in items:
        full = patients is not None and len(current) >= patients
        if current and (full or size + len(item[1]) > max_entries):
            groups.append(current)
            current, size = [], 0
        current.append(item)
        size += len(item[1])
    if current:
        groups.append(current)
    return groups


def _entries(group: Sequence[tuple[_Patient, list[Change]]]) -> int:
    return sum(len(changes) for _, changes in group)


def _send(
    client: FhirClient,
    group: list[tuple[_Patient, list[Change]]],
    kind: str,
    limit: TransactionLimit,
) -> bool:
    """One bundle of the group's changes; on a refusal of the whole (4xx), its halves.
    Returns whether the server took the bundle as sent."""
    bundle = {
        "resourceType": "Bundle",
        "type": kind,
        "entry": [change.entry for _, changes in group for change in changes],
    }
    try:
        answer = client.send_bundle(bundle)
    except FhirHttpError as err:
        if err.status in (409, 412):  # changed meanwhile: read again, plan again
            for p, changes in group:
                _retry(p, changes, err)
            return False
        if 400 <= err.status < 500 and err.status not in (401, 403, 429) and len(group) > 1:
            middle = len(group) // 2
            log.info(
                "%s of %d patients refused (HTTP %d); splitting it", kind, len(group), err.status
            )
            left = _send(client, group[:middle], kind, limit)
            right = _send(client, group[middle:], kind, limit)
            if left and right:
                limit.learn(max(_entries(group[:middle]), _entries(group[middle:])))
            return False
        if err.status >= 500 and len(group) == 1 and len(group[0][1]) > 1:
            # One patient's layer failed as a whole (a transaction holding an entry the server
            # failed for contention): its entries do not depend on each other, so they go in
            # halves, each with its own chance.
            [(p, changes)] = group
            middle = len(changes) // 2
            _send(client, [(p, changes[:middle])], kind, limit)
            if not p.done:
                _send(client, [(p, changes[middle:])], kind, limit)
            return False
        for p, changes in group:
            if 400 <= err.status < 500 and err.status != 429:
                _fail(p, err.message, _error_kind(err, kind), err.outcome)
            else:
                _retry(p, changes, err, kind=kind)
        return False
    except FhirClientError as err:  # no answer: what was made is read back
        for p, changes in group:
            _retry(p, changes, err, kind=kind)
        return False
    entries = answer.get("entry") if answer is not None else None
    flat = [(p, change) for p, changes in group for change in changes]
    if not isinstance(entries, list) or len(entries) != len(flat):
        for p, changes in group:
            _unknown(p, changes)
        return True
    for (p, change), got in zip(flat, entries, strict=True):
        if not p.done:
            _took(p, change, got.get("response") if isinstance(got, dict) else None)
    return True


def _took(p: _Patient, change: Change, response: Any) -> None:
    """What the server said of one entry, applied to what is known of the patient."""
    status = _status(response)
    if status is None:
        _unknown(p, [change])
        return
    if status >= 400:
        detail = response.get("outcome") if isinstance(response, dict) else None
        text = outcome_text(detail) if isinstance(detail, dict) else "no explanation given"
        request = change.entry["request"]
        message = (
            f"the server refused {request['method']} {change.resource_type} (HTTP {status}): {text}"
        )
        if status in (409, 412, 429) or status >= 500:
            _retry(p, [change], message=message, outcome=detail)
        else:
            _fail(p, message, f"HTTP {status} for one entry", detail)
        return
    method = change.entry["request"]["method"]
    location = _location(response) if method == "POST" else change.entry["request"]["url"]
    if location is None or (method == "POST" and status != 201 and change.kind != "provenance"):
        # A conditional create that found what it looked for: there, but as what?
        _unknown(p, [change])
        return
    resource = dict(change.entry["resource"])
    resource["id"] = location.split("/")[1]
    meta = {k: v for k, v in (resource.get("meta") or {}).items() if k != "versionId"}
    version = _version(response)
    if version is not None:
        meta["versionId"] = version  # else unknown: a later update of it goes unguarded
    resource["meta"] = meta
    _assume(
        p.held, Change(change.kind, change.fingerprint, {**change.entry, "resource": resource}), ""
    )
    p.attempts = 0  # progress: a later failure starts a new count


def _unknown(p: _Patient, changes: Iterable[Change]) -> None:
    """The outcome of these entries is unknown: read what they concern again."""
    for change in changes:
        if change.resource_type == "CarePlan" or change.resource_type in REQUEST_TYPES:
            p.stale(change.resource_type).add(change.fingerprint)
        else:  # a RiskAssessment, or a Provenance (found with its target's RiskAssessment)
            p.stale_risks.add(change.fingerprint)


def _retry(
    p: _Patient,
    changes: Iterable[Change],
    err: FhirClientError | None = None,
    *,
    message: str | None = None,
    outcome: dict[str, Any] | None = None,
    kind: str = "bundle",
) -> None:
    """A transient failure: read again and try once more, or give up after ENTRY_ATTEMPTS."""
    _unknown(p, changes)
    p.attempts += 1
    if p.attempts >= ENTRY_ATTEMPTS:
        if err is not None:
            _fail(p, err.message, _error_kind(err, kind), err.outcome)
        else:
            _fail(p, message or "the server failed", "server error for one entry", outcome)


def _fail(p: _Patient, message: str, kind: str, outcome: dict[str, Any] | None = None) -> None:
    p.done = True
    p.outcome.ok = False
    p.outcome.error = message
    p.outcome.error_kind = kind
    p.outcome.outcome = outcome


def _refresh(client: FhirClient, patients: Sequence[_Patient], options: FetchOptions) -> None:
    """Reads again what the last round left unknown (by identifier, with Provenances)."""
    for resource_type in ("RiskAssessment", "CarePlan", *REQUEST_TYPES):
        wanted = [p for p in patients if p.stale(resource_type) and not p.done]
        if not wanted:
            continue
        fps = {fp for p in wanted for fp in p.stale(resource_type)}
        try:
            found = suggestions_by_identifier(client, resource_type, fps, options)
        except FhirClientError as err:
            for p in wanted:
                _fail(p, f"reading back what was written failed: {err.message}", "read back")
            continue
        fresh = {p.plan.patient_id: Held() for p in wanted}
        _file(fresh, found)
        for p in wanted:
            got = fresh[p.plan.patient_id]
            by_fp, new = {
                "RiskAssessment": (p.held.risks, got.risks),
                "CarePlan": (p.held.plans, got.plans),
            }.get(resource_type, (p.held.requests, got.requests))
            for fp in p.stale(resource_type):
                if fp in new:
                    by_fp[fp] = new[fp]
                else:
                    by_fp.pop(fp, None)
            p.held.provenances.update(got.provenances)
            if resource_type == "CarePlan":  # the requests included with the plans
                p.held.requests.update(got.requests)
            p.stale(resource_type).clear()


def _conclude(p: _Patient) -> None:
    """The outcome's lists, from what was held before and after."""
    before, after, out = p.plan.held, p.held, p.outcome
    fp = p.plan.fingerprint
    risk, plan = after.risks.get(fp), after.plans.get(fp)
    out.risk_assessment = local_reference(risk) if risk and risk.get("id") else None
    out.care_plan = local_reference(plan) if plan and plan.get("id") else None
    for old, new in (
        (before.risks, after.risks),
        (before.plans, after.plans),
        (before.requests, after.requests),
        (before.provenances, after.provenances),
    ):
        for key, resource in new.items():
            if not resource.get("id") or str(resource["id"]).startswith("(new"):
                continue
            kind = str(resource["resourceType"])
            ref = f"{kind}/{resource['id']}"
            earlier = old.get(key)
            if earlier is None:
                out.created.append(ref)
            elif _version_of(earlier) != _version_of(resource):
                out.updated.append(ref)
            elif p.plan.changes and (
                key == fp
                or (kind in REQUEST_TYPES and key_fingerprint(key) == fp)
                or (kind == "Provenance" and _targets_any(resource, out))
            ):
                out.existing.append(ref)  # part of the suggestion completed by this write


def _targets_any(provenance: dict[str, Any], out: WriteOutcome) -> bool:
    named = {_unversioned(t.get("reference", "")) for t in provenance.get("target") or []}
    return bool(named & {out.risk_assessment, out.care_plan})


def _version_of(resource: dict[str, Any]) -> Any:
    return (resource.get("meta") or {}).get("versionId")


def _error_kind(err: FhirClientError, kind: str = "bundle") -> str:
    """A short, patient-free label to count errors by in the summary."""
    if isinstance(err, FhirResponseError):
        return "unexpected answer from the server"
    if isinstance(err, FhirHttpError):
        return f"HTTP {err.status} for a {kind}"
    return type(err).__name__.removeprefix("Fhir").replace("Error", " error").strip().lower()


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


def _version(response: dict[str, Any]) -> str | None:
    """The version an entry's answer names: its ``etag`` (``W/"3"``) or its location's history."""
    etag = response.get("etag")
    if isinstance(etag, str) and etag.strip():
        return etag.strip().removeprefix("W/").strip('"') or None
    location = response.get("location")
    if isinstance(location, str) and "/_history/" in location:
        return location.split("/_history/", 1)[1].strip("/") or None
    return None


def _unversioned(reference: str) -> str:
    return reference.split("/_history/", 1)[0]
