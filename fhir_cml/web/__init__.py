"""The web face: one Flask application serving every HTTP face of fhir-cml.

``create_app`` is the application factory::

    gunicorn 'fhir_cml:create_app()' --bind 0.0.0.0:8000     # production
    flask --app fhir_cml run                                  # development

Settings come from ``FHIR_CML_*`` environment variables and an optional file
(:mod:`fhir_cml.web.settings`) and are checked before anything is served. Each face is a
blueprint; :func:`blueprints` is the one place that lists them.
"""

from __future__ import annotations

import atexit
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Flask

from fhir_cml.web import http, logs
from fhir_cml.web.runtime import EXTENSION, Runtime
from fhir_cml.web.settings import Settings, load_settings

__all__ = ["Settings", "blueprints", "create_app"]


def blueprints() -> list[Blueprint]:
    """Every face the app serves, in registration order. Add a new face's blueprint here."""
    from fhir_cml.web import fhir_api, health, smart
    from fhir_cml.web.cds import hooks as cds_hooks

    return [health.bp, fhir_api.bp, cds_hooks.bp, smart.bp]


def create_app(config: Mapping[str, Any] | Settings | None = None) -> Flask:
    """The application; ``config`` overrides settings (a mapping of setting names, or Settings).

    Raises :class:`~fhir_cml.errors.ConfigurationError` naming the setting when one is missing
    or wrong, and :class:`~fhir_cml.errors.StateError` when the state store cannot be opened.
    """
    settings = config if isinstance(config, Settings) else load_settings(config)
    logs.configure(settings.log_level)
    app = Flask("fhir_cml", static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_content_length
    app.json.sort_keys = False  # type: ignore[attr-defined]
    rt = Runtime.start(settings)
    app.extensions[EXTENSION] = rt
    atexit.register(rt.close)
    logs.install(app)
    http.register(app)
    http.install_cors(app, settings)
    for blueprint in blueprints():
        app.register_blueprint(blueprint)
    return app
