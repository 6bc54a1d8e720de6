"""The sentence for each finding, from its parameters.

One entry per :class:`~fhir_cml.domain.findings.Finding`. A sentence takes every number it names
(a result, a threshold, a date) from the basis' parameters, so the thresholds stay written once, in
the domain's tables and configuration.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from functools import cache
from typing import Any

from fhir_cml.domain.basis import Basis, Value
from fhir_cml.domain.findings import Finding as F
from fhir_cml.domain.guidelines.table import EVENT_LABELS, Event, Measure
from fhir_cml.domain.vocabulary import (
    Cyp3a4Effect,
    ElnStatus,
    Guideline,
    LabKind,
    MedicationStatus,
    Milestone,
    TdmStatus,
)
from fhir_cml.reporting.words import P, either, number, say, word

Message = Callable[[P], str]


# --- Shared phrases ------------------------------------------------------------------------------


def sample(p: P) -> str:
    """The sample's control gene and copies, as a laboratory report names them."""
    copies = p.raw("copies")
    if copies is None:
        return "control-gene copies not reported"
    gene = p.gene or "control gene not named"
    return f"{p.copies} {gene} copies"


def label(guideline: Value) -> str:
    return guideline.label if isinstance(guideline, Guideline) else "the guideline"


_VERDICT: dict[str, str] = {
    ElnStatus.OPTIMAL: "is optimal",
    ElnStatus.WARNING: "is a warning",
    ElnStatus.SUBOPTIMAL: "is a suboptimal response",
    ElnStatus.FAILURE: "is failure",
}
_MILESTONE: dict[str, str] = {
    Milestone.M3: "3-month",
    Milestone.M6: "6-month",
    Milestone.M12: "12-month",
    Milestone.M18: "18-month",
    Milestone.ANY: "'any time'",
    Milestone.BASELINE: "baseline",
}


def verdict(status: Value) -> str:
    """'is optimal', 'is a warning', 'is a suboptimal response', 'is failure'."""
    return _VERDICT.get(word(status), "is not evaluable")


def milestone_name(ms: Value) -> str:
    return _MILESTONE.get(word(ms), word(ms))


def event_label(event: Value) -> str:
    return EVENT_LABELS.get(Event(word(event)), word(event))


def result(b: Value) -> str:
    """A result in a few words ("BCR::ABL1 3.5 % (IS) on 2025-05-26"), from its own basis."""
    if not isinstance(b, Basis):
        return word(b)
    p = P(b.params)
    if b.finding is F.PH_POSITIVE_RESULT:
        method = "FISH" if p.raw("method") == "fish" else "metaphases"
        return f"Ph+ {number(p.num('value'))} % ({method}) on {p.date}"
    if b.finding in (F.DEPTH_UNDETECTED,):
        return f"BCR::ABL1 not detected on {p.date} ({p.depth})"
    if p.has("value") and b.finding.value.startswith("depth-"):
        return f"BCR::ABL1 {p.value} (IS) on {p.date}"
    if b.finding.value.startswith("depth-"):
        return f"BCR::ABL1 result of {p.date}"
    return say(b).rstrip(".")


@cache  # a guideline has a few dozen bands, read for every result of every patient
def band(values: tuple[Any, ...]) -> str:
    """A band as the guideline writes it: "> 1-10 %", "<= 0.1 %", "Ph+ 0", "no CHR"."""
    measure, *edges = values
    if measure is Measure.CHR:
        return "no CHR" if edges and edges[0][0] in ("<", "<=") else "CHR"
    name = "Ph+ " if measure is Measure.PH_POSITIVE else ""
    parts = [(str(op), float(v)) for op, v in edges]
    if len(parts) == 2:
        (lo_op, lo), (hi_op, hi) = parts
        if hi_op == "<":
            return f"{name}{lo_op} {number(lo)} and < {number(hi)} %"
        return f"{name}{lo_op} {number(lo)}-{number(hi)} %"
    op, v = parts[0]
    if op == "<=" and v == 0:
        return f"{name}0" if name else "0 %"
    return f"{name}{op} {number(v)} %"


def differs(p: P) -> str:
    return (
        " (an older summary of these criteria, written for dose escalation, calls this a "
        "suboptimal response)"
        if p.has("summary_differs")
        else ""
    )


_ROLE = {
    "milestone": "read at the {ms} milestone (the result nearest to it)",
    "interim": "a later result in the {ms} window (it can make the reading worse, never better)",
    "early": "before the result read at the {ms} milestone (not counted)",
    "any-time": "read against the 'any time' criteria",
}


def _eln_band(p: P) -> str:
    ms = milestone_name(p.raw("milestone"))
    role = _ROLE.get(str(p.raw("role")), _ROLE["any-time"]).format(ms=ms)
    text = (
        f"{result(p.raw('result'))}, at {p.months} months on TKI, {role}: "
        f"{band(p.items('band'))} {verdict(p.raw('status'))} ({label(p.raw('guideline'))})"
    )
    if p.has("confirmed_by"):
        text += f", confirmed by {result(p.raw('confirmed_by'))} within 1-3 months"
    elif p.has("failure_if_confirmed"):
        text += "; failure if a later result within 1-3 months confirms it"
    return text + differs(p) + "."


def _eln_off_treatment(p: P) -> str:
    head = f"{result(p.raw('result'))}, off TKI since {p.stopped}"
    if p.has("lost"):
        return (
            f"{head}: loss of MMR (> {p.limit}) after stopping {verdict(p.raw('status'))} "
            f"({label(p.raw('guideline'))}); it is read as the relapse after TFR, not as an "
            "on-treatment result."
        )
    return f"{head}: MMR maintained."


def _eln_event(p: P) -> str:
    event = p.raw("event")
    status = verdict(p.raw("status"))
    name = label(p.raw("guideline"))
    if event is Event.RESISTANCE_MUTATION:
        text = f"Resistance mutation {p.mutation} detected on {p.date}: {status} ({name})"
    elif event is Event.MUTATION_POORLY_SENSITIVE:
        text = f"{p.mutation} detected on {p.date}: poorly sensitive to imatinib, {status} ({name})"
    elif event is Event.MUTATION_SENSITIVE:
        text = f"Mutation {p.mutation} detected on {p.date}: still sensitive to imatinib, {status} ({name})"
    elif event in (Event.LOSS_OF_MMR, Event.CONFIRMED_LOSS_OF_MMR):
        what = (
            "Confirmed loss of MMR (one result >= 1 %)"
            if event is Event.CONFIRMED_LOSS_OF_MMR
            else "Loss of MMR"
        )
        text = f"{p.loss} {what} {status} ({name})"
    elif event is Event.LOSS_OF_CCYR:
        text = f"Loss of CCyR: Ph+ {p.value} on {p.date} after Ph+ 0 earlier {status} ({name})"
    elif event is Event.LOSS_OF_CHR:
        text = f"Loss of CHR: {p.chr.rstrip('.')} - {status} ({name})"
    elif event is Event.HIGH_RISK_ACA:
        text = (
            f"High-risk additional chromosomal abnormality emerging in Ph+ cells on treatment "
            f"({p.date}) {status} ({name})"
        )
    else:
        text = f"{event_label(event).capitalize()} on {p.date} {status} ({name})"
    return text + differs(p) + "."


def _eln_baseline(p: P) -> str:
    return (
        f"{event_label(p.raw('event')).capitalize()} at diagnosis ({p.date}) {verdict(p.raw('status'))} "
        f"at baseline ({label(p.raw('guideline'))}); the baseline row sets the reading only until "
        "the first milestone is read."
    )


# --- Response depth ------------------------------------------------------------------------------


def _depth_undetected(p: P) -> str:
    note = (
        " (GUSB thresholds for MR4.5/MR5 from Cross 2015; confirm with the laboratory)"
        if p.has("confirm_gusb")
        else ""
    )
    return (
        f"BCR::ABL1 not detected on {p.date} with {sample(p)} (at least {p.needed} needed): "
        f"{p.depth}{note}."
    )


# --- Hematologic response ------------------------------------------------------------------------

_ABNORMAL = {
    LabKind.WBC: "WBC {v} x10^9/L (CHR needs < {limit})",
    LabKind.PLATELETS: "platelets {v} x10^9/L (CHR needs < {limit})",
    LabKind.BASOPHILS: "basophils {v} % (CHR needs < {limit} %)",
    LabKind.BLASTS: "blasts {v} % in peripheral blood (CHR needs none)",
    LabKind.SPLEEN: "spleen palpable {v} cm below the costal margin",
}


def _chr_absent(p: P) -> str:
    found = p.items("abnormal")
    phrases = [_ABNORMAL[kind].format(v=number(v), limit=number(limit)) for kind, v, limit in found]
    return f"No CHR on {p.date}: " + "; ".join(phrases) + "."


def _chr_present(p: P) -> str:
    note = f" ({p.unrecorded} not recorded)" if p.has("unrecorded") else ""
    return f"CHR on {p.date}: WBC, platelets and basophils within limits{note}."


# --- Loss of MMR ---------------------------------------------------------------------------------


def _loss_of_mmr(p: P) -> str:
    found = p.items("results")
    values = ", ".join(f"{word(v)} on {word(d)}" for v, d in found)
    state = "confirmed" if p.has("confirmed") else "not yet confirmed"
    return f"MMR achieved on {p.achieved}, then BCR::ABL1 > {p.limit}: {values} (loss of MMR, {state})."


# --- Monitoring ----------------------------------------------------------------------------------

_SCHEDULE = {
    "tfr-months-1-6": "monthly in months 1-6 after stopping TKI",
    "tfr-months-7-12": "every 2 months in months 7-12 after stopping TKI",
    "tfr-after-12-months": "every 3 months after the first year off TKI",
    "retreatment": "every 4-6 weeks after restarting the TKI until MMR is regained",
    "standard": "every 3 months on TKI",
}


def _why(p: P) -> str:
    phase = str(p.raw("phase"))
    months = number(p.num("phase_months"))
    if phase == "after-dose-reduction":
        weeks = int(p.num("interval_days")) // 7
        why = (
            f"every {weeks} weeks (4-6 weeks) for {months} months after the dose reduction of "
            f"{p.phase_start}"
        )
    elif phase == "early":
        why = f"monthly during the first {months} months on TKI"
    else:
        why = _SCHEDULE.get(phase, "on the schedule for this phase")
    return why


def _state(p: P) -> str:
    return f"overdue since {p.due}" if p.has("overdue") else f"next due by {p.due}"


def _schedule(p: P) -> str:
    why = _why(p)
    since = f"latest sample {p.latest}" if p.has("latest") else f"no sample since {p.phase_start}"
    return f"RQ-PCR {why}; {since}: {_state(p)}."


# --- Therapeutic drug monitoring -----------------------------------------------------------------


def _dose(p: P) -> str:
    return f" at {p.dose} mg/day" if p.has("dose") else ""


def _not_steady(p: P) -> str:
    found = p.items("problems")
    phrases = []
    for what, value, least, most in found:
        if what == "days-on-imatinib":
            phrases.append(f"only {word(value)} days on imatinib (>= {word(least)} needed)")
        elif what == "days-since-dose-change":
            phrases.append(f"{word(value)} days after a dose change (>= {word(least)} needed)")
        else:
            phrases.append(
                f"drawn {word(value)} h after the last dose (a trough is drawn immediately before "
                f"the next dose: {word(least)}-{word(most)} h accepted)"
            )
    return (
        f"Imatinib trough {p.ng_ml} ng/mL on {p.date}{_dose(p)} is not a steady-state trough: "
        + "; ".join(phrases)
        + "."
    )


def _steady(p: P) -> str:
    status = p.raw("status")
    if status is TdmStatus.SUBTHERAPEUTIC:
        text = f"below the {p.target} ng/mL associated with better CCyR and MMR rates"
    elif status is TdmStatus.SUPRATHERAPEUTIC:
        text = f"at or above {p.toxicity} ng/mL (toxicity watch)"
    else:
        text = f"at or above the {p.target} ng/mL target"
    note = (
        ""
        if p.has("at_current_dose")
        else " It was measured at an earlier dose, not the current one."
    )
    return f"Imatinib trough {p.ng_ml} ng/mL on {p.date}{_dose(p)} at steady state: {text}.{note}"


# --- Interactions --------------------------------------------------------------------------------

_EFFECT: dict[str, str] = {
    Cyp3a4Effect.STRONG_INHIBITOR: "a strong CYP3A4 inhibitor: raises TKI exposure (toxicity)",
    Cyp3a4Effect.STRONG_INDUCER: "a strong CYP3A4 inducer: lowers TKI exposure (loss of efficacy)",
}


def _interaction(p: P) -> str:
    since = f" since {p.since}" if p.has("since") else ""
    effect = _EFFECT[p.effect]
    return f"{p.medication.capitalize()}{since} is {effect} of {p.tki}."


# --- Risk scores ---------------------------------------------------------------------------------

_SCORE = {"sokal": "Sokal", "elts": "ELTS", "eutos": "EUTOS"}
_INPUT: dict[str, str] = {
    "age": "age {v} y",
    LabKind.SPLEEN: "spleen {v} cm",
    LabKind.PLATELETS: "platelets {v} x10^9/L",
    LabKind.BLASTS: "blasts {v} %",
    LabKind.BASOPHILS: "basophils {v} %",
}


def _score_name(p: P) -> str:
    return _SCORE.get(str(p.raw("score")), str(p.raw("score")))


def _cuts(p: P) -> str:
    found = p.items("cuts")
    parts: list[str] = []
    previous: float | None = None
    for cut in found:
        if len(cut) == 3:
            category, op, value = cut
            parts.append(f"{op} {number(value)} {word(category)}")
            previous = value
        else:
            parts.append(f"> {number(previous or 0)} {word(cut[0])}")
    return ", ".join(parts)


def _risk_score(p: P) -> str:
    found = p.items("inputs")
    inputs = ", ".join(_INPUT[k].format(v=number(v)) for k, v in found)
    text = (
        f"{_score_name(p)} score {p.value} at baseline ({p.on}; {inputs}): {p.category} "
        f"({_cuts(p)})."
    )
    if p.has("sokal_disagrees"):
        text += (
            f" The Sokal score says {p.sokal_disagrees}: where they disagree, ELN 2020 prefers "
            "ELTS."
        )
    if p.has("child"):
        text += " The score was derived in adults: read it with caution in a patient under 18."
    return text


def _risk_missing(p: P) -> str:
    found = p.items("missing")
    missing = ", ".join("age (birth date)" if m == "age" else word(m) for m in found)
    return (
        f"{_score_name(p)} score not evaluable: baseline {missing} not recorded between "
        f"{p.earliest} and {p.latest}."
    )


# --- Trial evidence ------------------------------------------------------------------------------

_IRIS_GROUP = {
    "ccyr-and-mmr": "CCyR and MMR at 12 months",
    "ccyr-without-mmr": "CCyR without MMR at 12 months (BCR::ABL1 <= 1 % taken as CCyR)",
    "no-ccyr": "no CCyR at 12 months (BCR::ABL1 > 1 %)",
}


# --- TFR -----------------------------------------------------------------------------------------


def _in_remission(p: P) -> str:
    seen = (
        f"; latest result {p.latest_depth} on {p.latest}"
        if p.has("latest")
        else "; no result since"
    )
    return (
        f"In treatment-free remission since {p.stopped} ({p.months} months){seen}; MMR not lost. "
        "Fluctuations without loss of MMR are common and are not relapse."
    )


def _tfr_duration(p: P) -> str:
    on = (
        "imatinib"
        if p.raw("drug") and str(p.raw("drug")) == "imatinib"
        else "a second-generation TKI"
    )
    return (
        f"{p.years} years on TKI since {p.since} (needs > {number(p.num('needed'))} years on {on})."
    )


# --- Suggestions ---------------------------------------------------------------------------------


def _drug(p: P, name: str = "drug") -> str:
    return word(p.raw(name)) or "the TKI"


def _options(p: P) -> str:
    """ "dasatinib, nilotinib or bosutinib" - never the drug that failed."""
    options = p.items("options")
    return either(options) if options else "another TKI, chosen by the mutation profile"


def _restarted(p: P) -> str:
    relapse = (
        f"after the relapse off treatment of {p.relapse}"
        if p.has("relapse")
        else (f"after the stop of {p.stopped}")
    )
    regained = (
        f"MMR regained on {p.regained}"
        if p.has("regained")
        else f"MMR not regained yet ({p.months} months since the restart)"
    )
    return f"TKI restarted on {p.restarted} {relapse}: {regained}."


def _escalate(p: P) -> str:
    then = (
        f" (then {p.highest} mg/day as 400 mg twice daily if needed and tolerated)"
        if p.num("next") < p.num("highest")
        else " (400 mg twice daily)"
    )
    reasons = []
    if p.has("low_trough"):
        reasons.append(f"a steady-state trough below {p.target} ng/mL")
    if p.has("sensitive"):
        reasons.append(f"a dose-sensitive mutation ({p.sensitive})")
    adherence = (
        ", adherence confirmed" if p.raw("adherent") is True else " - confirm adherence first"
    )
    failure = (
        " At failure, switching TKI is generally preferred; escalation is the option where another "
        "TKI is not available or not tolerated."
        if p.has("at_failure")
        else ""
    )
    return (
        f"Consider escalating imatinib from {p.dose} to {p.next} mg/day{then}: suboptimal response "
        f"with {' and '.join(reasons)}{adherence}.{failure}"
    )


def _reduce(p: P) -> str:
    supra = " (trough supratherapeutic)" if p.has("supratherapeutic") else ""
    deep = (
        "MR4.5 at reduction is associated with maintaining the response."
        if p.has("deep")
        else "Not reaching MR4.5 (ddPCR) at the reduction is associated with a higher risk of "
        "losing MMR/MR4; most who lose MMR regain it on the standard dose."
    )
    return (
        f"Stable MMR with adverse events affecting quality of life: consider a dose reduction of "
        f"{_drug(p)}{supra}, then RQ-PCR every 4-6 weeks for 6-12 months. {deep}"
    )


def _stable_mmr(p: P) -> str:
    needed = number(p.num("needed"))
    return (
        f"MMR (<= 0.1 %) in every result since {p.since} ({p.years} years, {p.results} results; "
        f"at least {needed} months required, sources say 1-2 years)."
    )


def _adverse_events(p: P) -> str:
    found = p.items("events")
    described = "; ".join(f"{d} ({word(when)})" for d, when in found)
    return f"Adverse events affecting quality of life: {described}."


_INTENSIFY = {
    "after-dose-reduction": "After the dose reduction: RQ-PCR every 4-6 weeks for 6-12 months.",
    "tfr-months-1-6": "Off TKI, months 1-6: RQ-PCR monthly.",
    "tfr-months-7-12": "Off TKI, months 7-12: RQ-PCR every 2 months.",
    "retreatment": "After restarting the TKI: RQ-PCR every 4-6 weeks until MMR is regained.",
}

_NOT_INTAKE: dict[str, str] = {
    MedicationStatus.ENTERED_IN_ERROR: "entered in error",
    MedicationStatus.NOT_TAKEN: "not taken",
    MedicationStatus.INTENDED: "intended (planned, not started)",
}


def _when(value: Value) -> str:
    return value.isoformat() if isinstance(value, date) else "an unknown date"


MESSAGES: dict[F, Message] = {
    # reading the record
    F.AFTER_AS_OF: lambda p: f"Dated after the as-of date {p.as_of}: not considered.",
    F.TFR_STOP_INFERRED: lambda p: (
        f"The TKI stop of {p.stopped} has no recorded reason; after deep molecular response from "
        f"{p.first} to {p.last} it is read as a treatment-free remission attempt. Record the "
        "reason to confirm."
    ),
    F.NO_TKI_RECORD: lambda p: (
        "No TKI record (a MedicationStatement, MedicationRequest, MedicationDispense or "
        "MedicationAdministration naming a TKI): therapy is unknown and time-based rules are not "
        "evaluable."
    ),
    F.ORDER_SUPPLY_RAN_OUT: lambda p: (
        f"{p.drug} order is active, but its supply ran out on {p.supplied_to} and no "
        "renewal followed: read as still taken, as its status says; confirm with the patient."
    ),
    F.NO_USABLE_START: lambda p: (
        "No TKI statement gives a usable start date: time on therapy is unknown and time-based "
        "rules are not evaluable."
    ),
    F.STATEMENT_NOT_INTAKE: lambda p: (
        f"{p.drug} statement is {_NOT_INTAKE.get(p.status, p.status)}: not part of the course."
    ),
    F.STATEMENT_NO_START: lambda p: (
        f"{p.drug} statement has no start date: left out of the course."
    ),
    F.STATEMENT_AFTER_AS_OF: lambda p: (
        f"{p.drug} statement starts {p.start}, after the as-of date."
    ),
    F.END_FROM_ASSERTED: lambda p: (
        f"{p.drug} statement is {p.status} without an end date: the date it was asserted "
        f"({p.end}) is taken as the stop date."
    ),
    F.ENDED_WITHOUT_DATE: lambda p: (
        f"{p.drug} statement is {p.status} but says neither when it ended nor when it was "
        "asserted: left out of the course."
    ),
    # response depth
    F.DEPTH_NO_RESULT: lambda p: "No BCR::ABL1 result is recorded up to the as-of date.",
    F.DEPTH_ATYPICAL_TRANSCRIPT: lambda p: (
        f"Result of {p.date}: transcript {p.transcript} cannot be reported on the International "
        "Scale (only e13a2/e14a2)."
    ),
    F.DEPTH_NOT_ON_IS: lambda p: (
        f"Result of {p.date} is not on the International Scale and has no laboratory conversion "
        "factor: not used for response decisions."
    ),
    F.DEPTH_NO_MMR: lambda p: f"BCR::ABL1 {p.value} (IS) on {p.date} is above {p.limit}: no MMR.",
    F.DEPTH_MMR: lambda p: (
        f"BCR::ABL1 {p.value} (IS) on {p.date} is <= {p.limit} and > {p.deeper}: MMR."
    ),
    F.DEPTH_CAPPED_COPIES_UNKNOWN: lambda p: (
        f"BCR::ABL1 {p.value} (IS) on {p.date} would be {p.would_be}, but the sample's adequacy "
        f"cannot be checked ({sample(p)}); at least {p.abl1_needed} ABL1 or {p.gusb_needed} GUSB "
        "copies are needed to call MR4 or deeper, so MMR is reported."
    ),
    F.DEPTH_CAPPED_LOW_COPIES: lambda p: (
        f"BCR::ABL1 {p.value} (IS) on {p.date} with only {sample(p)}: fewer than {p.needed} "
        f"{p.gene} copies is not adequate to call MR4 or deeper, so MMR is reported."
    ),
    F.DEPTH_DETECTED: lambda p: (
        f"BCR::ABL1 {p.value} (IS) on {p.date} is <= {p.limit} with {sample(p)}: {p.depth}."
    ),
    F.DEPTH_UNDETECTED_COPIES_UNKNOWN: lambda p: (
        f"BCR::ABL1 not detected on {p.date}, but {sample(p)}: the sensitivity of the sample is "
        "unknown, so no response level can be called."
    ),
    F.DEPTH_UNDETECTED: _depth_undetected,
    F.DEPTH_UNDETECTED_LOW_COPIES: lambda p: (
        f"BCR::ABL1 not detected on {p.date}, but with only {sample(p)}: fewer than {p.needed} "
        f"{p.gene} copies is not adequate to call a response level; repeat with an adequate sample."
    ),
    # hematologic and cytogenetic results
    F.CHR_RECORDED: lambda p: (
        f"Recorded as {'in' if p.has('complete') else 'not in'} complete hematologic response on "
        f"{p.date}."
    ),
    F.CHR_ABSENT: _chr_absent,
    F.CHR_PRESENT: _chr_present,
    F.PH_POSITIVE_RESULT: lambda p: (
        f"Ph+ {number(p.num('value'))} % "
        f"({'FISH' if p.raw('method') == 'fish' else 'metaphases'}) on {p.date}."
    ),
    F.LOSS_OF_MMR: _loss_of_mmr,
    # milestones
    F.ELN_NO_START: lambda p: (
        "No TKI start date is known, so time on therapy and the milestones cannot be placed."
    ),
    F.ELN_NO_MILESTONE_YET: lambda p: (
        f"No result has been read against a {label(p.raw('guideline'))} milestone yet "
        f"({p.months} months on TKI; the first milestone is at {p.first})."
    ),
    F.ELN_BAND: _eln_band,
    F.ELN_UNREADABLE: lambda p: f"{p.why} Not read against the milestone.",
    F.ELN_OFF_TREATMENT: _eln_off_treatment,
    F.ELN_RETREATMENT: lambda p: (
        f"{result(p.raw('result'))}, {p.months} months after restarting TKI on {p.restarted} "
        f"for a relapse off treatment: MMR not regained yet - loss of MMR "
        f"{verdict(p.raw('status'))} ({label(p.raw('guideline'))}), not an on-treatment failure; "
        f"almost all patients regain MMR, most within 3-6 months (ELN 2020)."
    ),
    F.ELN_LATER_UNREADABLE: lambda p: (
        f"The later result(s) of {p.dates} could not be read ({p.why}) The reading therefore "
        f"rests on the result(s) of {p.rests_on}."
    ),
    F.ELN_EARLIER_FAILURE: lambda p: (
        f"Note: an earlier result was read as failure ({p.milestone} milestone, {p.date}) on the "
        "current TKI."
    ),
    F.ELN_BASELINE_ELTS: lambda p: (
        f"High-risk ELTS score at baseline {verdict(p.raw('status'))} under "
        f"{label(p.raw('guideline'))}; the baseline row sets the reading only until the first "
        "milestone is read."
    ),
    F.ELN_BASELINE_ABNORMALITY: _eln_baseline,
    F.ELN_EVENT: _eln_event,
    # monitoring
    F.MONITORING_NO_START: lambda p: "No TKI start date: no schedule can be set.",
    F.MONITORING_STOPPED: lambda p: (
        "TKI stopped for a reason other than TFR: the schedule is for the clinician to set."
    ),
    F.MONITORING_SCHEDULE: _schedule,
    F.MONITORING_UNREAD: lambda p: (
        f"RQ-PCR {_why(p)}; a BCR::ABL1 sample of {p.sample} exists but could not be read "
        f"({p.reason}): {_state(p)}, counted from that sample; check the result."
    ),
    F.MONITORING_UNREAD_UNDATED: lambda p: (
        f"RQ-PCR {_why(p)}; a BCR::ABL1 result without a readable date exists but could not be "
        f"read ({p.reason}): whether the next PCR is due cannot be said; check the result."
    ),
    # drug level and interactions
    F.TDM_OFF_IMATINIB: lambda p: (
        f"Imatinib trough {p.ng_ml} ng/mL on {p.date} was drawn while the patient was not taking "
        "imatinib."
    ),
    F.TDM_NOT_STEADY_STATE: _not_steady,
    F.TDM_TIMING_UNKNOWN: lambda p: (
        f"Imatinib level {p.ng_ml} ng/mL on {p.date}{_dose(p)} without the time since the last "
        "dose (its code, LOINC 57844-3, gives no timing): not a trough, so not read against the "
        "trough target and not a basis for a dose change. Record the time since the dose, or "
        "measure a trough (LOINC 103609-4)."
    ),
    F.TDM_STEADY_STATE: _steady,
    F.CYP3A4_INTERACTION: _interaction,
    # risk scores
    F.RISK_NO_DATE: lambda p: (
        f"{_score_name(p)} score not evaluable: no start of TKI therapy or diagnosis date to take "
        "baseline values at."
    ),
    F.RISK_MISSING_INPUTS: _risk_missing,
    F.RISK_SCORE: _risk_score,
    # trial evidence
    F.IRIS_PROGRESSION: lambda p: (
        f"Progression to accelerated or blast phase within 5 years: about {p.probability} in IRIS "
        f"for patients with {_IRIS_GROUP.get(str(p.raw('group')), p.group)}."
    ),
    F.IRIS_PROGRESSION_GROUP: lambda p: (
        f"IRIS 5-year freedom from progression, {_IRIS_GROUP.get(str(p.raw('group')), p.group)}: "
        f"{p.free}."
    ),
    F.STIM1_RELAPSE_RISK: lambda p: (
        f"Molecular relapse within 3 years of stopping imatinib: about {p.probability} in STIM1 "
        f"({p.free} relapse-free at {p.months} months, 95 % CI 29-48); most relapses occur within "
        "6 months."
    ),
    F.STIM1_OUTCOMES: lambda p: (
        "STIM1 (imatinib stopped after at least 2 years of undetectable BCR::ABL1): 39 % "
        "relapse-free at 36 months, relapse defined as two consecutive positive results one "
        "month apart with a >= 1-log increase; Sokal risk and imatinib duration predicted relapse."
    ),
    F.STIM1_RELAPSE: lambda p: (
        f"Two consecutive positive results {p.days} days apart ({p.first} on {p.first_date}, "
        f"{p.second} on {p.second_date}) with a >= 1-log increase: molecular relapse by the STIM1 "
        "definition (for comparison)."
    ),
    # TFR
    F.TFR_NO_COURSE: lambda p: "No TKI course with a start date is recorded.",
    F.TFR_STOPPED_OTHER: lambda p: (
        f"The TKI was stopped on {_when(p.raw('stopped'))} for a reason other than TFR; TFR "
        "criteria apply to patients on TKI."
    ),
    F.TFR_RELAPSE: lambda p: (
        f"TKI stopped for TFR on {p.stopped}; BCR::ABL1 {p.value} (IS) on {p.date} is a loss of "
        f"MMR (> {p.limit}): molecular relapse. Restart {_drug(p)} within 4 weeks, by "
        f"{p.restart_by} (ELN 2020). The relapse off treatment is not an on-treatment failure."
    ),
    F.TFR_RESTARTED: _restarted,
    F.TFR_PAEDIATRIC: lambda p: (
        f"Aged {p.age} (under {p.adult}): a treatment-free remission attempt belongs within a "
        "clinical study (paediatric recommendations); the ELN 2020 TFR criteria are adult "
        "guidance."
    ),
    F.TFR_TRANSCRIPT_FROM_IS: lambda p: (
        f"Typical transcript (e13a2/e14a2): the result of {p.date} is reported on the "
        "International Scale, which only p210 transcripts can be (confirm if the laboratory "
        "says otherwise)."
    ),
    F.TFR_IN_REMISSION: _in_remission,
    F.TFR_ADVANCED_PHASE: lambda p: (
        "Accelerated or blast phase recorded: TFR requires CML in chronic phase."
    ),
    F.TFR_CHRONIC_PHASE: lambda p: "Chronic phase recorded.",
    F.TFR_PHASE_UNKNOWN: lambda p: (
        "Confirm that the CML has only ever been in chronic phase (the phase is not recorded): "
        "TFR requires CML in first chronic phase."
    ),
    F.TFR_FIRST_LINE: lambda p: f"First-line TKI ({p.drug or 'unknown'}).",
    F.TFR_SWITCHED_FOR_RESISTANCE: lambda p: (
        "A TKI was switched for resistance or failure: TFR needs first-line TKI or a switch for "
        "intolerance only."
    ),
    F.TFR_INTOLERANCE_ONLY: lambda p: f"Line {p.line} after switches for intolerance only.",
    F.TFR_SWITCH_REASON_UNKNOWN: lambda p: (
        "Confirm that the TKI was switched for intolerance only (the switch is recorded without "
        "its reason): TFR needs first-line TKI or a switch for intolerance only."
    ),
    F.TFR_TRANSCRIPT_UNKNOWN: lambda p: (
        "Confirm a typical e13a2 or e14a2 transcript (the transcript type is not recorded and no "
        "result is on the International Scale)."
    ),
    F.TFR_TRANSCRIPT_TYPICAL: lambda p: f"Typical transcript ({p.transcript}).",
    F.TFR_TRANSCRIPT_ATYPICAL: lambda p: (
        f"Atypical transcript ({p.transcript}): TFR needs e13a2 or e14a2."
    ),
    F.TFR_DURATION_UNDEFINED: lambda p: (
        f"Minimal TKI duration for {p.drug or 'this TKI'} is not defined by ELN 2020 (> 5 years "
        "imatinib, > 4 years second-generation)."
    ),
    F.TFR_DURATION: _tfr_duration,
    F.TFR_NO_DMR: lambda p: (
        f"Not currently in deep molecular response (MR4 or deeper): TFR needs DMR for > "
        f"{number(p.num('needed'))} years."
    ),
    F.TFR_DMR: lambda p: (
        f"Deep molecular response (MR4 or deeper, shallowest {p.shallowest}) from {p.first} to "
        f"{p.last}: {p.years} years (needs > {number(p.num('needed'))} years)."
    ),
    F.TFR_PRIOR_FAILURE: lambda p: f"Prior treatment failure ({p.date}): {p.reading}",
    F.TFR_NO_PRIOR_FAILURE: lambda p: "No treatment failure by ELN 2020 criteria in the record.",
    F.TFR_POOR_ADHERENCE: lambda p: (
        f"Poor adherence documented on {p.date}: TFR needs a motivated and adherent patient."
    ),
    F.TFR_CONFIRM: lambda p: (
        "Confirm with the patient and the laboratory: a motivated, adherent patient after "
        "structured communication; access to high-quality quantitative PCR on the International "
        "Scale with rapid results; and agreement to RQ-PCR monthly for months 1-6 after stopping, "
        "every 2 months for months 7-12, every 3 months after."
    ),
    F.TFR_OPTIMAL_MET: lambda p: (
        "Optimal criteria also met (TKI > 5 years; DMR > 3 years at MR4 or > 2 years at MR4.5)."
    ),
    F.TFR_MINIMAL_MET: lambda p: (
        "Minimal criteria met; optimal criteria (TKI > 5 years; DMR > 3 years at MR4 or > 2 "
        "years at MR4.5) not yet."
    ),
    # suggestions and the bases they add
    F.MUTATION_DETECTED: lambda p: f"{p.mutation} detected on {p.date}.",
    F.ADHERENCE_ASSESSED: lambda p: (
        f"Adherence assessed on {p.date}: {'adherent' if p.has('adherent') else 'not adherent'}."
    ),
    F.RESTART_AFTER_RELAPSE: lambda p: (
        f"Molecular relapse after stopping TKI (loss of MMR): restart {_drug(p)} (the same TKI) "
        f"by {p.by}, within 4 weeks; then RQ-PCR every 4-6 weeks until MMR is regained (almost "
        f"all patients regain it, most within 3-6 months). Mutation analysis only if MMR is not "
        f"regained within {number(p.num('within_months'))} months of restarting. The relapse is "
        "not an on-treatment failure."
    ),
    F.SWITCH_T315I: lambda p: (
        f"T315I detected: it resists imatinib and every second-generation TKI - do not escalate; "
        f"switch to {_options(p)}."
    ),
    F.SWITCH_MUTATION: lambda p: (
        f"Kinase-domain mutation ({p.mutations}) detected on {_drug(p)}: switch TKI, to "
        f"{_options(p)} (chosen by the mutation profile)."
    ),
    F.SWITCH_FAILURE: lambda p: (
        f"Treatment failure on {_drug(p)}: switching TKI is favoured - {_options(p)} (by the "
        "drug that failed, the line of therapy and any mutation; mutation analysis and "
        "comorbidities decide among them)."
    ),
    F.SWITCH_AT_FAILURE: lambda p: "Failure favours switching TKI rather than escalating.",
    F.SWITCH_AT_HIGHEST_DOSE: lambda p: (
        f"Suboptimal response already at {p.dose} mg/day imatinib (the highest escalation step): "
        f"consider switching to {_options(p)}."
    ),
    F.NO_STEP_LEFT: lambda p: f"No escalation step is left above {p.highest} mg/day.",
    F.PCR_OVERDUE: lambda p: f"BCR::ABL1 RQ-PCR was due by {p.due} and is overdue.",
    F.REPEAT_UNREADABLE: lambda p: (
        "The latest BCR::ABL1 result cannot be read "
        + (
            "(too few control-gene copies): repeat with an adequate sample."
            if p.has("too_few_copies")
            else "(not on the International Scale or sensitivity unknown): repeat at a laboratory "
            "reporting on the IS with control-gene copies."
        )
    ),
    F.REPEAT_TO_CONFIRM_LOSS: lambda p: (
        "Loss of MMR not yet confirmed: repeat RQ-PCR to confirm (ELN 2013 counts a confirmed loss "
        "- two consecutive results, one >= 1 % - as failure)."
    ),
    F.REPEAT_3M_WARNING: lambda p: (
        "Above the 3-month optimal limit: repeat RQ-PCR within 1-3 months; failure if the later "
        "result confirms it (ELN 2020)."
    ),
    F.ADHERENCE_POOR: lambda p: (
        f"Adherence documented as poor on {p.date}: address it before any change of dose or drug "
        "- non-adherence is the leading cause of suboptimal response."
    ),
    F.ADHERENCE_CHECK: lambda p: (
        "Check adherence: it is the leading cause of suboptimal response, and comes before any "
        "change of dose."
    ),
    F.WORKUP_ADHERENCE_FIRST: lambda p: "Adherence is checked first.",
    F.TROUGH_BEFORE_DOSE_CHANGE: lambda p: (
        f"Measure an imatinib trough level at steady state (>= {p.days_on} days on therapy, >= "
        f"{p.days_since_change} days after a dose change, immediately before the next dose): "
        f"< {p.target} ng/mL supports escalation."
    ),
    F.WORKUP_TROUGH_FIRST: lambda p: "A trough level comes before any change of dose.",
    F.TROUGH_FOR_INTERACTION: lambda p: (
        "A strong CYP3A4 interaction is present: a trough level shows its effect on imatinib "
        "exposure."
    ),
    F.MUTATION_ANALYSIS_DUE: lambda p: (
        f"Test for BCR::ABL1 kinase-domain mutations (none in the last "
        f"{round(p.num('months'))} months): the result decides between escalation and "
        "a switch of TKI."
    ),
    F.WORKUP_MUTATION_FIRST: lambda p: "Mutation analysis precedes escalation.",
    F.MUTATION_ANALYSIS_INDICATED: lambda p: (
        "Kinase-domain mutation analysis is indicated at failure or warning of the response to "
        "TKI (not for a baseline warning alone)."
    ),
    F.MUTATION_ANALYSIS_AFTER_RESTART: lambda p: (
        "MMR not regained after restarting the TKI for the relapse off treatment: test for "
        "BCR::ABL1 kinase-domain mutations now."
    ),
    F.MMR_NOT_REGAINED: lambda p: (
        f"TKI restarted on {p.restarted}, {p.months} months ago, and MMR not regained: mutation "
        f"analysis is indicated when MMR is not regained within 3-6 months of re-treatment "
        f"({number(p.num('expected'))} months here)."
    ),
    F.ESCALATE: _escalate,
    F.ESCALATION_STEPS: lambda p: (
        f"Escalation steps {' -> '.join(word(s) for s in p.items('steps'))} mg/day; "
        f"current {p.dose} mg/day."
    ),
    F.IRIS_ESCALATION_OUTCOMES: lambda p: (
        "IRIS: after escalation 42 % reached a cytogenetic response; at 3 years 89 % free from "
        "progression, 84 % alive."
    ),
    F.REVIEW_INTERACTIONS: lambda p: (
        f"Review {p.medications} with {_drug(p)}: strong CYP3A4 inhibitors raise and inducers "
        "lower TKI exposure; prefer an alternative or monitor closely."
    ),
    F.REDUCE: _reduce,
    F.REDUCTION_STABLE_MMR: _stable_mmr,
    F.REDUCTION_ADVERSE_EVENTS: _adverse_events,
    F.DISCUSS_TFR: lambda p: (
        "Meets the ELN 2020 criteria for a treatment-free remission attempt: discuss stopping the "
        "TKI, with monthly RQ-PCR for months 1-6, every 2 months for months 7-12, every 3 months "
        "after."
    ),
    F.INTENSIFY: lambda p: _INTENSIFY.get(str(p.raw("phase")), "RQ-PCR more often for now."),
    F.CONTINUE: lambda p: (
        f"Optimal response: continue {_drug(p)}{' ' + p.dose + ' mg/day' if p.has('dose') else ''}."
    ),
    F.OPTIMAL_CONTINUE: lambda p: "An optimal response means continuing the current treatment.",
    F.SCHEDULE_PCR: lambda p: f"Next BCR::ABL1 RQ-PCR due by {p.due}.",
    # order checks
    F.ORDER_T315I_ESCALATION: lambda p: (
        f"T315I present: {p.drug} escalation to {p.ordered} mg/day ordered - escalation does not "
        "overcome T315I"
    ),
    F.T315I_DOSE_DOES_NOT_HELP: lambda p: (
        f"{p.drug.capitalize()} {p.current} mg/day now; {p.ordered} mg/day ordered. T315I "
        "confers resistance that a higher dose does not overcome: switch to a TKI active against "
        "T315I, guided by the mutation profile."
    ),
    F.ORDER_ABOVE_HIGHEST_STEP: lambda p: (
        f"Imatinib {p.ordered} mg/day ordered: above the {p.highest} mg/day maximum"
    ),
    F.BEYOND_HIGHEST_STEP: lambda p: (
        f"The highest imatinib escalation step is {p.highest} mg/day (400 mg twice daily); "
        f"{p.ordered} mg/day is beyond it."
    ),
    F.ORDER_INTERACTION: lambda p: (
        f"{p.drug.capitalize()} ordered alongside {p.medications}: strong CYP3A4 interaction "
        f"{p.effect} TKI exposure"
    ),
}
