"""The SMART on FHIR app: launched from the EHR in a patient's context, one page that answers
"how is this patient responding, and what should I consider?".

- :mod:`~fhir_cml.web.smart.launch`: EHR and standalone launch, the redirect URI.
- :mod:`~fhir_cml.web.smart.oauth`: discovery, authorization code flow with PKCE, tokens.
- :mod:`~fhir_cml.web.smart.sessions`: server-side sessions behind an opaque cookie.
- :mod:`~fhir_cml.web.smart.views`: the page, Accept, Dismiss; demo mode.
- :mod:`~fhir_cml.web.smart.page` and :mod:`~fhir_cml.web.smart.chart`: what the page shows.

``bp`` is registered by :func:`fhir_cml.web.create_app` like the other faces; registering it
starts the app's :class:`~fhir_cml.web.smart.runtime.SmartRuntime` and routes the launch at
``FHIR_CML_SMART_LAUNCH_PATH``.
"""

from __future__ import annotations

from flask.sansio.blueprints import BlueprintSetupState

from fhir_cml.web.runtime import EXTENSION as CORE_EXTENSION
from fhir_cml.web.runtime import Runtime
from fhir_cml.web.smart import launch
from fhir_cml.web.smart import views as views  # its routes register on the blueprint
from fhir_cml.web.smart.blueprint import bp
from fhir_cml.web.smart.runtime import EXTENSION, SmartRuntime

__all__ = ["bp"]


@bp.record_once
def _start(state: BlueprintSetupState) -> None:
    core = state.app.extensions[CORE_EXTENSION]
    assert isinstance(core, Runtime)
    state.app.extensions[EXTENSION] = SmartRuntime.start(core.settings, core.store)
    state.add_url_rule(core.settings.smart_launch_path, "launch", launch.launch)
