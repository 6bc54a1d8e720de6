"""The application service: read, assess, build, validate and write, the one path every face
(the ``fhir-cml`` command, the sync job, ``$cml-assess``, CDS Hooks, the SMART app) takes.

Faces call only what is listed here:

- assessing: :func:`assess_loaded` (many patients; one that fails does not stop the others),
  :func:`one_patient` and :func:`assess_one` (the web faces' one patient per call),
  :func:`why_nothing`, :func:`checked_result_bundle` ($cml-assess's answer, validated),
  :func:`load_rule_config` (the site's rule settings, for every face);
- building: :func:`suggestions` (RiskAssessment, CarePlan, Provenance, each validated: what is
  written and what a CDS card shows come from the same builders through the same gate);
- writing: :func:`write_back` (one patient), :func:`plan` and :func:`write` (many patients:
  the sync job; ``plan`` alone is ``--dry-run``; :class:`Hint` says which earlier assessments
  of a patient to look for), :func:`accept` and :func:`revoke` (a clinician puts a suggestion in
  force, or withdraws it), with :class:`WriteSettings` (how) and :class:`Decider` (who decided).
  Whatever the server does, a completed write leaves the patient with exactly one current
  suggestion (:mod:`fhir_cml.ehr.writeback` says how).

Errors are those of :mod:`fhir_cml.errors`; write failures are reported per patient on the
:class:`WriteOutcome`, never raised, so one refused patient does not cost the others.
"""

import importlib
from typing import TYPE_CHECKING, Any

from fhir_cml.app.assessing import (
    Assessed,
    assess_loaded,
    assess_one,
    checked_result_bundle,
    load_rule_config,
    one_patient,
    why_nothing,
)

if TYPE_CHECKING:
    from fhir_cml.app.writing import (
        DEFAULT_WRITE,
        Decider,
        WriteSettings,
        accept,
        plan,
        revoke,
        suggestions,
        write,
        write_back,
    )
    from fhir_cml.ehr.writeback import (
        DEEP,
        Hint,
        Plan,
        TransactionLimit,
        WriteMode,
        WriteOutcome,
    )

# The write path (an HTTP client, the FHIR models) is imported when first used, so that reading
# and assessing alone (``fhir-cml assess``) starts without it.
_WRITING = "fhir_cml.app.writing"
_WRITEBACK = "fhir_cml.ehr.writeback"
_LATER: dict[str, str] = {
    **dict.fromkeys(
        (
            "DEFAULT_WRITE",
            "Decider",
            "WriteSettings",
            "accept",
            "plan",
            "revoke",
            "suggestions",
            "write",
            "write_back",
        ),
        _WRITING,
    ),
    **dict.fromkeys(
        ("DEEP", "Hint", "Plan", "TransactionLimit", "WriteMode", "WriteOutcome"), _WRITEBACK
    ),
}


def __getattr__(name: str) -> Any:
    module = _LATER.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "DEEP",
    "DEFAULT_WRITE",
    "Assessed",
    "Decider",
    "Hint",
    "Plan",
    "TransactionLimit",
    "WriteMode",
    "WriteOutcome",
    "WriteSettings",
    "accept",
    "assess_loaded",
    "assess_one",
    "checked_result_bundle",
    "load_rule_config",
    "one_patient",
    "plan",
    "revoke",
    "suggestions",
    "why_nothing",
    "write",
    "write_back",
]
