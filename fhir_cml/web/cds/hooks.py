"""The CDS Hooks face (CDS Hooks 2.0): discovery, the services, and feedback.

- ``GET /cds-services``: discovery; public, as it carries no patient data.
- ``POST /cds-services/{id}``: a hook call. Order of checks: an unknown service is 404; then
  the EHR's JWT (401, see :mod:`fhir_cml.web.cds.tokens`, ``aud`` = this URL); then the body (400,
  :mod:`fhir_cml.web.cds.hook_request`); then the data (prefetch, or fetched with
  ``fhirAuthorization``; 412 without either, :mod:`fhir_cml.web.cds.data`), all within one
  deadline (``FHIR_CML_CDS_DEADLINE`` from the call's arrival). The answer is
  ``{"cards": [...]}`` (:mod:`fhir_cml.web.cds.cards`), empty when there is nothing to say (no CML
  evidence, no order of concern). When part of the data did not arrive (a prefetch cut short
  that could not be completed, a read not done by the deadline), no reading is shown: a card
  says what is missing instead (patient-view), or says that the order checks ran on part of
  the record.
- ``POST /cds-services/{id}/feedback``: accepted/overridden outcomes, stored in the state
  store; 200 with ``{}``. Only for cards this service issued, to the same EHR (the cards of every
  answer are remembered for ``CARD_DAYS``), with suggestions those cards had, and with bounded
  comments; anything else is refused (400) and nothing of the request is stored.

Errors are OperationOutcome-shaped JSON (``application/json``), like every error of the app.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, request

from fhir_cml.app import suggestions
from fhir_cml.errors import RequestError
from fhir_cml.state.cds import CARD_DAYS, IssuedCard
from fhir_cml.web import assessment
from fhir_cml.web.cds import cards, data, hook_request
from fhir_cml.web.cds import orders as order_checks
from fhir_cml.web.cds.data import Gathered
from fhir_cml.web.cds.services import EVIDENCE_KEYS, PATIENT_VIEW, Service, discovery
from fhir_cml.web.cds.tokens import VerifiedToken
from fhir_cml.web.http import json_response, read_json
from fhir_cml.web.logs import note_caller
from fhir_cml.web.runtime import runtime

bp = Blueprint("cds_hooks", __name__, url_prefix="/cds-services")


@bp.get("")
def discover() -> Response:
    return json_response(discovery(runtime().cds_services))


@bp.post("/<service_id>")
def call(service_id: str) -> Response:
    started = time.monotonic()
    service = _service(service_id)
    settings = runtime().settings
    token = _verify([f"{settings.cds_base}/{service_id}"])
    hook_call = hook_request.parse(service, read_json())
    gathered = data.gather(hook_call, settings, data.reads_deadline(started, settings))
    if service.hook == PATIENT_VIEW:
        found = _monitoring(hook_call, gathered)
    else:
        found = _orders(hook_call, gathered)
    runtime().cds.remember_cards(service.id, token.iss, [_issued(c) for c in found], _now())
    return json_response({"cards": found})


@bp.post("/<service_id>/feedback")
def feedback(service_id: str) -> Response:
    _service(service_id)
    url = f"{runtime().settings.cds_base}/{service_id}"
    token = _verify([f"{url}/feedback", url])
    items = hook_request.parse_feedback(read_json())
    cds = runtime().cds
    issued = cds.issued(service_id, token.iss, [item.card for item in items], _now())
    for n, item in enumerate(items):
        card = issued.get(item.card)
        if card is None:
            raise RequestError(
                f"feedback[{n}].card: this service issued no such card to this EHR (or it is "
                f"older than {CARD_DAYS} days).",
                code="not-found",
            )
        unknown = sorted(set(item.accepted_suggestions) - set(card.suggestions))
        if unknown:
            raise RequestError(
                f"feedback[{n}].acceptedSuggestions: the card has no suggestion "
                f"{unknown[0][:64]!r}.",
                code="not-found",
            )
    cds.record_feedback(service_id, items, issuer=token.iss, tenant=token.tenant)
    return json_response({})


def _service(service_id: str) -> Service:
    service = runtime().cds_services.get(service_id)
    if service is None:
        raise RequestError(
            f"No CDS service {service_id[:64]!r} here; see GET /cds-services.",
            status=404,
            code="not-found",
        )
    return service


def _verify(audiences: list[str]) -> VerifiedToken:
    token = runtime().verifier.verify(request.headers.get("Authorization"), audiences)
    note_caller(token.iss, token.sub)
    return token


def _now() -> datetime:
    return datetime.now(UTC)


def _issued(card: dict[str, Any]) -> IssuedCard:
    return IssuedCard(str(card["uuid"]), tuple(str(s["uuid"]) for s in card.get("suggestions", ())))


def _monitoring(call: hook_request.HookCall, gathered: Gathered) -> list[Any]:
    settings = runtime().settings
    now = datetime.now(UTC).replace(microsecond=0)
    as_of = assessment.today()
    loaded = assessment.load(gathered.resources, settings, now)
    record = next((r for r in loaded.records if r.patient == call.patient_key), None)
    if not gathered.complete:
        # Never a reading from part of the record: say what is missing instead.
        if record is not None:
            kind = "reading"
        elif EVIDENCE_KEYS & gathered.incomplete.keys():
            kind = "unknown"
        else:
            return []  # the diagnoses and BCR::ABL1 results arrived whole: no CML
        missing = gathered.missing_text()
        return [
            cards.incomplete_card(settings, call.patient_key, as_of.isoformat(), missing, kind=kind)
        ]
    if record is None:
        return []
    result = assessment.assess_record(record, as_of, settings.guideline, settings)
    return [cards.monitoring_card(result, suggestions(result, now), settings)]


def _orders(call: hook_request.HookCall, gathered: Gathered) -> list[Any]:
    settings = runtime().settings
    now = datetime.now(UTC).replace(microsecond=0)
    as_of = assessment.today()
    record, orders = order_checks.read_orders(
        call, gathered.resources, assessment.options(settings, now), as_of
    )
    found = [
        cards.order_card(finding, settings, as_of.isoformat(), call.patient_key)
        for finding in order_checks.check(record, orders, as_of)
    ]
    if not gathered.complete and any(o.drug is not None and o.selected for o in orders):
        missing = gathered.missing_text()
        found.append(
            cards.incomplete_card(
                settings, call.patient_key, as_of.isoformat(), missing, kind="orders"
            )
        )
    return found
