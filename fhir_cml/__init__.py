"""fhir-cml: CML response readings and care-plan suggestions from FHIR R4 data.

The public surface is small: :func:`fhir_cml.domain.assess` for the pure engine,
:mod:`fhir_cml.fhir` for reading and writing FHIR, :mod:`fhir_cml.errors` for exceptions, and
:func:`create_app` for the web service (``flask --app fhir_cml run``,
``gunicorn 'fhir_cml:create_app()'``). ``create_app`` is imported on first use, so using the
domain alone never imports Flask.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["__version__", "create_app"]

if TYPE_CHECKING:
    from fhir_cml.web import create_app


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from fhir_cml.web import create_app

        return create_app
    raise AttributeError(f"module 'fhir_cml' has no attribute {name!r}")
