"""A CDS Hooks call as the service reads it: the request body checked field by field.

The fields and their optionality are the CDS Hooks 2.0 request's (``hook``, ``hookInstance``,
``fhirServer``, ``fhirAuthorization``, ``context``, ``prefetch``) and the hooks' contexts
(``patient-view``: ``patientId``; ``order-select``: ``patientId``, ``selections``,
``draftOrders``; ``order-sign``: ``patientId``, ``draftOrders``). Anything missing or of the
wrong type is a 400 naming the field; nothing here talks to a server.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from fhir_cml.errors import RequestError
from fhir_cml.state.cds import Feedback
from fhir_cml.web.cds.services import ORDER_SELECT, ORDER_SIGN, Service

FHIR_ID: Final = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


@dataclass(frozen=True, slots=True)
class FhirAccess:
    """``fhirAuthorization``: a bearer token for ``fhirServer`` and what it allows."""

    access_token: str
    scope: str
    subject: str
    expires_in: int
    patient: str | None = None


@dataclass(frozen=True, slots=True)
class HookCall:
    service: Service
    hook: str
    hook_instance: str
    patient_id: str
    context: dict[str, Any]
    prefetch: dict[str, Any]
    fhir_server: str | None
    access: FhirAccess | None

    @property
    def patient_key(self) -> str:
        return f"Patient/{self.patient_id}"

    def draft_orders(self) -> list[dict[str, Any]]:
        """The resources of ``context.draftOrders`` (a Bundle, checked by :func:`parse`)."""
        bundle = self.context.get("draftOrders") or {}
        return [
            e["resource"]
            for e in bundle.get("entry") or []
            if isinstance(e, dict) and isinstance(e.get("resource"), dict)
        ]

    def selections(self) -> list[str] | None:
        """``context.selections`` of order-select (checked by :func:`parse`); None otherwise."""
        found = self.context.get("selections")
        return list(found) if self.hook == ORDER_SELECT and isinstance(found, list) else None


def parse(service: Service, body: Any) -> HookCall:
    """The call, or RequestError (400) naming what is wrong with the body."""
    if not isinstance(body, dict):
        raise _bad("The request body must be a JSON object (a CDS Hooks request).")
    hook = _string(body, "hook")
    if not service.takes(hook):
        raise _bad(f"Service {service.id} is invoked on {service.hook}, not on {hook[:64]}.")
    instance = _string(body, "hookInstance")
    context = body.get("context")
    if not isinstance(context, dict):
        raise _bad("context must be an object.")
    patient_id = context.get("patientId")
    if not isinstance(patient_id, str) or not FHIR_ID.match(patient_id):
        raise _bad("context.patientId must be a FHIR id.")
    if hook in (ORDER_SELECT, ORDER_SIGN):
        _orders(context, hook)
    prefetch = body.get("prefetch", {})
    if not isinstance(prefetch, dict):
        raise _bad("prefetch must be an object.")
    for key, value in prefetch.items():
        if value is not None and not (
            isinstance(value, dict) and isinstance(value.get("resourceType"), str)
        ):
            raise _bad(f"prefetch.{key[:64]} must be a FHIR resource or null.")
    server = body.get("fhirServer")
    if server is not None and (not isinstance(server, str) or not server.startswith("http")):
        raise _bad("fhirServer must be an http(s) URL.")
    access = _access(body.get("fhirAuthorization"), server)
    return HookCall(
        service,
        hook,
        instance,
        patient_id,
        context,
        {k: v for k, v in prefetch.items() if k in service.prefetch},
        server,
        access,
    )


def _orders(context: dict[str, Any], hook: str) -> None:
    draft = context.get("draftOrders")
    if not isinstance(draft, dict) or draft.get("resourceType") != "Bundle":
        raise _bad("context.draftOrders must be a FHIR Bundle.")
    if not isinstance(draft.get("entry", []), list):
        raise _bad("context.draftOrders.entry must be an array.")
    if hook == ORDER_SELECT:
        selections = context.get("selections")
        if not isinstance(selections, list) or not all(isinstance(s, str) for s in selections):
            raise _bad("context.selections must be an array of references.")


def _access(value: Any, server: str | None) -> FhirAccess | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _bad("fhirAuthorization must be an object.")
    if server is None:
        raise _bad("fhirAuthorization is given without fhirServer.")
    token = _string(value, "access_token", "fhirAuthorization.")
    kind = _string(value, "token_type", "fhirAuthorization.")
    if kind.lower() != "bearer":
        raise _bad("fhirAuthorization.token_type must be Bearer.")
    expires = value.get("expires_in")
    if not isinstance(expires, int) or isinstance(expires, bool):
        raise _bad("fhirAuthorization.expires_in must be an integer.")
    patient = value.get("patient")
    if patient is not None and not isinstance(patient, str):
        raise _bad("fhirAuthorization.patient must be a string.")
    return FhirAccess(
        token,
        _string(value, "scope", "fhirAuthorization."),
        _string(value, "subject", "fhirAuthorization."),
        expires,
        patient,
    )


def _string(holder: dict[str, Any], name: str, prefix: str = "", limit: int = 0) -> str:
    value = holder.get(name)
    if not isinstance(value, str) or not value:
        raise _bad(f"{prefix}{name} must be a non-empty string.")
    if limit and len(value) > limit:
        raise _bad(f"{prefix}{name} is longer than {limit} characters.")
    return value


# Bounds on what a feedback request may store (a response has a few cards, each with one or two
# suggestions; a clinician's comment is a few sentences).
MAX_FEEDBACK: Final = 100
MAX_SUGGESTIONS: Final = 20
MAX_COMMENT: Final = 4000


def parse_feedback(body: Any) -> list[Feedback]:
    """The items of a feedback request (``{"feedback": [...]}``), or RequestError (400). Whether
    their cards were issued is the caller's to check."""
    if not isinstance(body, dict) or not isinstance(body.get("feedback"), list):
        raise _bad("The body must be an object with a feedback array.")
    items = body["feedback"]
    if not items or len(items) > MAX_FEEDBACK:
        raise _bad(f"feedback must hold 1 to {MAX_FEEDBACK} items.")
    return [_feedback(item, f"feedback[{n}]") for n, item in enumerate(items)]


def _feedback(item: Any, where: str) -> Feedback:
    if not isinstance(item, dict):
        raise _bad(f"{where} must be an object.")
    card = _string(item, "card", f"{where}.", limit=64)
    outcome = item.get("outcome")
    if outcome not in ("accepted", "overridden"):
        raise _bad(f"{where}.outcome must be accepted or overridden.")
    accepted: list[str] = []
    suggestions = item.get("acceptedSuggestions")
    if outcome == "accepted":
        if not isinstance(suggestions, list) or not suggestions:
            raise _bad(f"{where}.acceptedSuggestions is required for an accepted outcome.")
        if len(suggestions) > MAX_SUGGESTIONS:
            raise _bad(f"{where}.acceptedSuggestions holds more than {MAX_SUGGESTIONS} items.")
        for n, suggestion in enumerate(suggestions):
            if not isinstance(suggestion, dict):
                raise _bad(f"{where}.acceptedSuggestions[{n}] must be an object.")
            accepted.append(
                _string(suggestion, "id", f"{where}.acceptedSuggestions[{n}].", limit=64)
            )
    reason = item.get("overrideReason")
    system = code = display = comment = None
    if reason is not None:
        if not isinstance(reason, dict):
            raise _bad(f"{where}.overrideReason must be an object.")
        coding = reason.get("reason")
        if coding is not None:
            if not isinstance(coding, dict):
                raise _bad(f"{where}.overrideReason.reason must be a Coding.")
            code = _string(coding, "code", f"{where}.overrideReason.reason.", limit=128)
            system = _string(coding, "system", f"{where}.overrideReason.reason.", limit=512)
            found = coding.get("display")
            if found is not None and (not isinstance(found, str) or len(found) > 512):
                raise _bad(
                    f"{where}.overrideReason.reason.display must be a string of at most 512."
                )
            display = found
        comment = reason.get("userComment")
        if comment is not None and not isinstance(comment, str):
            raise _bad(f"{where}.overrideReason.userComment must be a string.")
        if comment is not None and len(comment) > MAX_COMMENT:
            raise _bad(
                f"{where}.overrideReason.userComment is longer than {MAX_COMMENT} characters."
            )
    stamp = _string(item, "outcomeTimestamp", f"{where}.", limit=64)
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        raise _bad(f"{where}.outcomeTimestamp must be an ISO timestamp.") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return Feedback(
        card,
        outcome,
        moment,
        tuple(accepted),
        system,
        code,
        display,
        comment,
    )


def _bad(message: str) -> RequestError:
    return RequestError(message, status=400, code="invalid")
