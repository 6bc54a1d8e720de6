"""From the readings to suggestions a clinician can accept or dismiss.

The policies in :mod:`fhir_cml.domain.rules.policies` each decide one kind of suggestion (restart,
switch, the PCR itself, the work-up before a dose change, escalation, interactions, reduction,
TFR, monitoring, continuing); this runs them in order, keeps the first suggestion of each code and
lists them most urgent first.
"""

from __future__ import annotations

from fhir_cml.domain.results import Suggestion
from fhir_cml.domain.rules.policies import IN_ORDER, Context, facts
from fhir_cml.domain.vocabulary import Recommendation

__all__ = ["ORDER", "Context", "recommend"]

# Order in which suggestions are listed: the most urgent first.
ORDER = (
    Recommendation.RESTART_TKI,
    Recommendation.SWITCH_TKI,
    Recommendation.PCR_OVERDUE,
    Recommendation.REPEAT_PCR,
    Recommendation.CHECK_ADHERENCE,
    Recommendation.MEASURE_TROUGH_LEVEL,
    Recommendation.MUTATION_ANALYSIS,
    Recommendation.ESCALATE_DOSE,
    Recommendation.REVIEW_INTERACTIONS,
    Recommendation.CONSIDER_DOSE_REDUCTION,
    Recommendation.DISCUSS_TFR,
    Recommendation.INTENSIFY_MONITORING,
    Recommendation.CONTINUE_THERAPY,
    Recommendation.SCHEDULE_PCR,
)
_RANK = {code: n for n, code in enumerate(ORDER)}


def recommend(ctx: Context) -> tuple[Suggestion, ...]:
    known = facts(ctx)
    out: dict[Recommendation, Suggestion] = {}
    for policy in IN_ORDER:
        for suggestion in policy(ctx, known, frozenset(out)):
            out.setdefault(suggestion.code, suggestion)
    return tuple(sorted(out.values(), key=lambda s: _RANK[s.code]))
