"""Liveness and readiness for orchestrators and load balancers.

``/healthz`` answers as long as the process serves requests (no dependency is touched).
``/readyz`` checks what a request needs: the state store answers a query, and the EHR's FHIR
server (when configured) answers ``GET [base]/metadata`` within ``FHIR_CML_READY_TIMEOUT``.
Neither says anything about patients; failures are named by kind, not by message.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response

from fhir_cml.errors import FhirClientError, StateError
from fhir_cml.web.http import json_response
from fhir_cml.web.runtime import runtime

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    return json_response({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Response:
    rt = runtime()
    checks: dict[str, dict[str, Any]] = {}
    try:
        rt.state_ok()
        checks["state"] = {"ok": True}
    except StateError:
        checks["state"] = {"ok": False, "error": "the state store does not answer"}
    if rt.ehr is None:
        checks["fhir"] = {"ok": True, "configured": False}
    else:
        try:
            rt.ehr.ping()
            checks["fhir"] = {"ok": True}
        except FhirClientError as err:
            checks["fhir"] = {
                "ok": False,
                "error": type(err).__name__,
                "status": err.status,
            }
    ready = all(check["ok"] for check in checks.values())
    return json_response(
        {"status": "ok" if ready else "unavailable", "checks": checks}, 200 if ready else 503
    )
