"""The reading as a RiskAssessment (profile cml-risk-assessment, docs/outbound.md).

The coded reading sits in extensions so programs need not parse text; notes and rationales carry
the same reading in sentences, each with the rule and source behind it, for the clinician.
"""

from __future__ import annotations

from typing import Any, Final

from fhir_cml.domain.results import Assessment, Prediction, RiskScore
from fhir_cml.domain.vocabulary import ElnStatus, RiskCategory
from fhir_cml.fhir.canonical import (
    CML_ASSESSMENT,
    CS_CML,
    CS_ELN_MILESTONE,
    CS_ELN_RESPONSE,
    CS_MOLECULAR_RESPONSE,
    CS_RISK_CATEGORY,
    CS_TDM_STATUS,
    CS_TFR_STATUS,
    ELTS_SCORE,
    EUTOS_SCORE,
    EXT_ELN_RESPONSE,
    EXT_MOLECULAR_RESPONSE,
    EXT_NEXT_PCR_DUE,
    EXT_RISK_SCORE,
    EXT_RULESET_VERSION,
    EXT_TDM_STATUS,
    EXT_TFR_STATUS,
    MOLECULAR_RELAPSE_AFTER_STOP,
    PROFILE_RISK_ASSESSMENT,
    PROGRESSION_AP_BC,
    SOKAL_SCORE,
    UCUM,
)
from fhir_cml.fhir.outbound.elements import (
    all_bases,
    as_of_extension,
    basis_extension,
    coding,
    concept,
    day,
    guideline_coding,
    source_text,
)
from fhir_cml.fhir.outbound.identifiers import (
    OutboundIds,
    input_reference,
    resource_type,
    software,
)
from fhir_cml.fhir.outbound.narrative import risk_assessment_text
from fhir_cml.reporting import prediction_text, say, suggestion_text

OUTCOME_DISPLAY: Final = {
    PROGRESSION_AP_BC: "Progression to accelerated or blast phase",
    MOLECULAR_RELAPSE_AFTER_STOP: "Molecular relapse after stopping TKI",
    SOKAL_SCORE: "Sokal score",
    ELTS_SCORE: "ELTS score",
    EUTOS_SCORE: "EUTOS score",
}
_SCORE_CODES: Final = {"sokal": SOKAL_SCORE, "elts": ELTS_SCORE, "eutos": EUTOS_SCORE}


def build_risk_assessment(assessment: Assessment, ids: OutboundIds | None = None) -> dict[str, Any]:
    a = assessment
    ids = ids or OutboundIds.of(a)
    resource: dict[str, Any] = {
        "resourceType": "RiskAssessment",
        "meta": {"profile": [PROFILE_RISK_ASSESSMENT]},
        "text": risk_assessment_text(a),
        "extension": reading_extensions(a),
        "identifier": [ids.assessment_identifier],
        "status": "final",
        "method": {
            "coding": [guideline_coding(a)],
            "text": f"fhir-cml rules {a.ruleset_version} - {a.guideline.label}",
        },
        "code": concept(CS_CML, CML_ASSESSMENT, "CML response assessment"),
        "subject": input_reference(a.patient),
        "occurrenceDateTime": day(a.as_of),
    }
    condition = cml_condition(a)
    if condition is not None:
        resource["condition"] = input_reference(condition)
    resource["performer"] = software(a.ruleset_version)
    if a.inputs:
        resource["basis"] = [input_reference(ref) for ref in a.inputs]
    # Each prediction states its probability: servers that evaluate ras-2 as R4 published it
    # strictly refuse one without (a baseline category goes in a risk-score extension instead).
    predictions = [_trial(p) for p in a.predictions if p.probability is not None]
    if predictions:
        resource["prediction"] = predictions
    if a.recommendations:
        resource["mitigation"] = "\n".join(
            f"{n}. {suggestion_text(s)}" for n, s in enumerate(a.recommendations, 1)
        )
    resource["note"] = [{"text": sentence} for sentence in reading_sentences(a)]
    return resource


def reading_extensions(a: Assessment) -> list[dict[str, Any]]:
    """The machine-readable reading: as-of, rules, depth, ELN, TFR, TDM, next PCR, bases."""
    eln: list[dict[str, Any]] = [
        {"url": "status", "valueCoding": coding(CS_ELN_RESPONSE, a.eln.status.value)}
    ]
    if a.eln.milestone is not None:
        eln.append(
            {"url": "milestone", "valueCoding": coding(CS_ELN_MILESTONE, a.eln.milestone.value)}
        )
    eln.append({"url": "guideline", "valueCoding": guideline_coding(a)})
    out: list[dict[str, Any]] = [
        as_of_extension(a),
        {"url": EXT_RULESET_VERSION, "valueString": a.ruleset_version},
        {
            "url": EXT_MOLECULAR_RESPONSE,
            "valueCodeableConcept": concept(
                CS_MOLECULAR_RESPONSE, a.molecular_response.depth.value
            ),
        },
        {"url": EXT_ELN_RESPONSE, "extension": eln},
        {
            "url": EXT_TFR_STATUS,
            "valueCodeableConcept": concept(CS_TFR_STATUS, a.tfr.status.value),
        },
        {
            "url": EXT_TDM_STATUS,
            "valueCodeableConcept": concept(CS_TDM_STATUS, a.tdm.status.value),
        },
    ]
    if a.monitoring.next_pcr_due is not None:
        out.append({"url": EXT_NEXT_PCR_DUE, "valueDate": day(a.monitoring.next_pcr_due)})
    out.extend(
        _score(score) for score in a.risk_scores if score.category is not RiskCategory.NOT_EVALUABLE
    )
    out.extend(basis_extension(b) for b in all_bases(a))
    return out


def reading_sentences(a: Assessment) -> list[str]:
    """The reading in sentences, one note each: depth, ELN, loss of MMR, TFR, TDM, monitoring."""
    milestone = f" at {a.eln.milestone.value}" if a.eln.milestone else ""
    eln = f"{a.guideline.label}: {a.eln.status.value}{milestone}."
    if a.eln.status is ElnStatus.NOT_EVALUABLE:
        eln = f"{a.guideline.label}: not evaluable."
    out = [
        f"Molecular response: {a.molecular_response.depth.value}. "
        f"{say(a.molecular_response.basis)}",
        " ".join([eln, *(say(r) for r in a.eln.reasons)]),
    ]
    if a.loss_of_mmr.lost and a.loss_of_mmr.basis is not None:
        out.append(say(a.loss_of_mmr.basis))
    out.append(
        " ".join(
            [
                f"Treatment-free remission: {a.tfr.status.value}.",
                *(say(r) for r in a.tfr.reasons),
            ]
        )
    )
    tdm = f"TDM: {a.tdm.status.value}."
    out.append(f"{tdm} {say(a.tdm.basis)}" if a.tdm.basis else tdm)
    out.extend(say(i.basis) for i in a.interactions)
    out.append(say(a.monitoring.basis))
    return out


def cml_condition(a: Assessment) -> str | None:
    """The CML Condition among the inputs, when its reference names the type."""
    return next((ref for ref in a.inputs if resource_type(ref) == "Condition"), None)


def _trial(p: Prediction) -> dict[str, Any]:
    out: dict[str, Any] = {
        "outcome": {
            "coding": [coding(CS_CML, p.outcome, OUTCOME_DISPLAY.get(p.outcome))],
            "text": OUTCOME_DISPLAY.get(p.outcome, p.outcome),
        }
    }
    if p.probability is not None:
        # R4: a percentage (0-100), not a fraction: 61, not 0.61.
        percent = round(p.probability * 100, 6)
        out["probabilityDecimal"] = int(percent) if percent.is_integer() else percent
    if p.years is not None:
        out["whenRange"] = {"high": {"value": p.years, "unit": "a", "system": UCUM, "code": "a"}}
    out["rationale"] = f"{prediction_text(p)} {source_text(p.basis)}"
    return out


def _score(score: RiskScore) -> dict[str, Any]:
    """The risk-score extension: which score, its value when known, its category."""
    code = _SCORE_CODES[score.name]
    parts: list[dict[str, Any]] = [
        {"url": "score", "valueCoding": coding(CS_CML, code, OUTCOME_DISPLAY[code])}
    ]
    if score.value is not None:
        parts.append({"url": "value", "valueDecimal": score.value})
    parts.append({"url": "category", "valueCoding": coding(CS_RISK_CATEGORY, score.category.value)})
    return {"url": EXT_RISK_SCORE, "extension": parts}
