"""What the page shows, built from the JSON contract (:func:`fhir_cml.reporting.patient_contract`).

The reading, the suggestions and their bases are the contract's, so the page says what
``fhir-cml assess --format json`` says; this module only arranges them for a clinician and
turns each basis's evidence references into words ("BCR::ABL1 0.031 % IS on 2025-05-26"), so
a reader can check a suggestion against the results without looking references up.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final

from fhir_cml import __version__
from fhir_cml.domain import Assessment, PatientRecord
from fhir_cml.domain.model import Issue
from fhir_cml.domain.rules.catalogue import RULESET_VERSION
from fhir_cml.domain.rules.common import pct
from fhir_cml.fhir.outbound.identifiers import fingerprint
from fhir_cml.reporting import issue_item, patient_contract
from fhir_cml.reporting.summary import status_parts
from fhir_cml.reporting.words import either
from fhir_cml.state.smart import DecisionRecord
from fhir_cml.web.smart.chart import NARROW, ChartData, chart_data, render_svg

NOTICE: Final = "Suggestions for a clinician to review; not orders."
DISMISS_REASONS: Final = (
    ("not-applicable", "Does not apply to this patient"),
    ("already-addressed", "Already addressed or in progress"),
    ("clinical-judgement", "Clinical judgement differs"),
    ("patient-preference", "Patient's preference"),
    ("data-problem", "The data are incomplete or wrong"),
    ("other", "Other (say why below)"),
)
MAX_COMMENT: Final = 1000
_STATUS_CLASS: Final = {
    "optimal": "ok",
    "warning": "warn",
    "suboptimal": "warn",
    "failure": "alert",
    "not-evaluable": "none",
}
# The lead suggestion in a few words, for the one-line status at the top of the page.
_ACTION: Final = {
    "switch-tki": "consider switching TKI",
    "escalate-dose": "consider a dose escalation",
    "consider-dose-reduction": "consider a dose reduction",
    "discuss-tfr": "discuss a treatment-free remission attempt",
    "restart-tki": "restart the TKI",
    "check-adherence": "check adherence",
    "measure-trough-level": "measure a trough level",
    "mutation-analysis": "send a kinase-domain mutation analysis",
    "intensify-monitoring": "monitor more closely",
    "repeat-pcr": "repeat the PCR",
    "pcr-overdue": "the PCR is overdue",
    "review-interactions": "review interacting drugs",
}
_THERAPY_STATUS: Final = {
    "active": "active",
    "interrupted": "interrupted",
    "stopped": "stopped",
    "tfr": "stopped for treatment-free remission",
    "none": "no TKI recorded",
}
_LAB_UNITS: Final = {
    "wbc": "x10^9/L",
    "platelets": "x10^9/L",
    "basophils": "% in blood",
    "blasts": "% in blood",
    "spleen": "cm below the costal margin",
}
_TFR: Final = {
    "eligible": "eligible for a TFR attempt",
    "not-eligible": "not eligible",
    "in-tfr": "in treatment-free remission",
    "molecular-relapse": "molecular relapse after stopping",
    "not-evaluable": "not evaluable",
}


@dataclass(frozen=True, slots=True)
class Subject:
    """Whose page this is and where its forms go."""

    iss: str  # the EHR's FHIR base ("demo" in demo mode)
    patient: str  # Patient/<id>
    as_of: date
    demo: bool
    accept_url: str
    dismiss_url: str
    user: str | None = None  # the fhirUser (absolute URL)
    user_name: str | None = None  # their name, when the EHR gave it
    back_url: str | None = None
    logout_url: str | None = None
    may_decide: bool = True  # a practitioner (or the demo): Accept and Dismiss are offered
    why_not: str | None = None

    @property
    def signed_in_as(self) -> str | None:
        """Who signed in, in words: the name, else the reference (said to be one)."""
        if self.user_name:
            return self.user_name
        if self.user:
            reference = "/".join(self.user.rstrip("/").split("/")[-2:])
            return f"{reference} (the EHR gave no name)"
        return None


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the reading: a label, what it says, its state and the bases behind it."""

    label: str
    value: str
    state: str = ""
    reasons: tuple[dict[str, Any], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "reasons", tuple(distinct(self.reasons)))


@dataclass
class PageModel:
    subject: Subject
    contract: dict[str, Any]
    patient_name: str
    patient_details: str
    rows: list[Row]
    suggestions: list[dict[str, Any]]
    predictions: list[dict[str, Any]]
    issues: list[dict[str, Any]]
    chart: ChartData
    chart_svg: str
    chart_svg_narrow: str
    status_line: str
    status_state: str
    fingerprint: str
    evidence: dict[str, str]
    sources: list[str]
    csrf_token: str
    decisions: list[DecisionRecord] = field(default_factory=list)
    flash: dict[str, Any] | None = None
    public_base_url: str = ""
    notice: str = NOTICE
    version: str = __version__
    ruleset: str = RULESET_VERSION
    reasons: tuple[tuple[str, str], ...] = DISMISS_REASONS
    max_comment: int = MAX_COMMENT

    @property
    def decided(self) -> DecisionRecord | None:
        """The latest decision on exactly this proposal (same fingerprint), if any."""
        return next((d for d in self.decisions if d.fingerprint == self.fingerprint), None)

    def label(self, ref: str) -> str:
        return self.evidence.get(ref, ref)

    @property
    def has_errors(self) -> bool:
        return any(i.get("severity") in ("error", "fatal") for i in self.issues)


def build_page(
    *,
    assessment: Assessment,
    record: PatientRecord,
    resources: Sequence[Mapping[str, Any]],
    subject: Subject,
    csrf_token: str,
    public_base_url: str,
    load_issues: Iterable[Issue] = (),
    decisions: Sequence[DecisionRecord] = (),
    flash: dict[str, Any] | None = None,
) -> PageModel:
    contract = patient_contract(assessment)
    data = chart_data(record, assessment)
    name, details = patient_banner(resources, record.patient)
    issues = list(contract["issues"]) + [issue_item(i) for i in load_issues]
    suggestions = [r | {"basis": distinct(r["basis"])} for r in contract["recommendations"]]
    return PageModel(
        subject=subject,
        contract=contract,
        patient_name=name,
        patient_details=details,
        rows=reading_rows(contract),
        suggestions=suggestions,
        predictions=list(contract["predictions"]),
        issues=issues,
        chart=data,
        chart_svg=render_svg(data),
        chart_svg_narrow=render_svg(data, NARROW),
        status_line=status_line(assessment, record, contract),
        status_state=_STATUS_CLASS.get(contract["eln"]["status"], ""),
        fingerprint=fingerprint(assessment),
        evidence=evidence_labels(record),
        sources=_sources(contract),
        csrf_token=csrf_token,
        decisions=list(decisions),
        flash=flash,
        public_base_url=public_base_url,
    )


def distinct(items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Bases with the same rule and statement once (in first-seen order): a criterion that
    several conclusions rest on is listed once under each."""
    seen: set[tuple[str, str]] = set()
    out = []
    for b in items:
        key = (str(b.get("rule")), str(b.get("text")))
        if key not in seen:
            seen.add(key)
            out.append(b)
    return out


def status_line(assessment: Assessment, record: PatientRecord, c: dict[str, Any]) -> str:
    """The reading in one line, e.g. "ELN 2020 failure at 12 months - T315I - no MMR, BCR::ABL1
    3.1 % (2025-06-02) - consider switching to ponatinib or asciminib": the status parts every
    face shows (:func:`fhir_cml.reporting.summary.status_parts`), the kinase-domain mutations
    found, and the lead suggestion in a few words (the suggestions follow in full)."""
    parts = status_parts(assessment, next_pcr=False)
    as_of = assessment.as_of
    mutations = sorted(
        {m.mutation or "mutation" for m in record.mutations if m.detected and m.date <= as_of}
    )
    if mutations:
        at = 2 if c["tfr"]["status"] == "molecular-relapse" else 1
        parts.insert(at, ", ".join(mutations))
    if c["loss_of_mmr"]["lost"]:
        parts.append("loss of MMR" + (" (confirmed)" if c["loss_of_mmr"]["confirmed"] else ""))
    if c["tfr"]["status"] == "in-tfr":
        parts.append(_TFR["in-tfr"])
    lead = next(
        (r for r in c["recommendations"] if r["code"] in _ACTION and r["code"] != "pcr-overdue"),
        None,
    )
    if lead is not None:
        options = lead["params"].get("options") if lead["code"] == "switch-tki" else None
        # the options fit the drug that failed, the line and any mutation (the domain's choice)
        parts.append(
            f"consider switching to {either(options)}" if options else _ACTION[lead["code"]]
        )
    elif c["eln"]["status"] == "optimal" and c["therapy"]["drug"]:
        parts.append(f"continue {c['therapy']['drug']}")
    return " - ".join(parts)


def reading_rows(c: dict[str, Any]) -> list[Row]:
    """The current reading, one row per question a hematologist asks."""
    rows = [
        Row("Therapy", therapy_text(c["therapy"])),
        Row("Latest BCR::ABL1", latest_text(c["latest_bcr_abl1"])),
        Row(
            "Response depth",
            c["molecular_response"],
            "none" if c["molecular_response"] == "not-evaluable" else "",
            tuple(c["molecular_response_reasons"]),
        ),
    ]
    eln = c["eln"]
    guideline = {"eln2020": "ELN 2020", "eln2013": "ELN 2013", "eln2009": "ELN 2009"}.get(
        c["guideline"], c["guideline"]
    )
    rows.append(
        Row(
            f"{guideline} category",
            eln_text(eln["status"], eln["milestone"]),
            _STATUS_CLASS.get(eln["status"], ""),
            tuple(eln["reasons"]),
        )
    )
    loss = c["loss_of_mmr"]
    if loss["lost"]:
        rows.append(
            Row(
                "Loss of MMR",
                "confirmed" if loss["confirmed"] else "not yet confirmed",
                "alert",
                tuple(loss["reasons"]),
            )
        )
    tfr = c["tfr"]
    rows.append(
        Row("TFR status", _TFR.get(tfr["status"], tfr["status"]), "", tuple(tfr["reasons"]))
    )
    tdm = c["tdm"]
    tdm_text = tdm["status"].replace("-", " ")
    if tdm["trough_ng_ml"] is not None:
        tdm_text += f": trough {_number(tdm['trough_ng_ml'])} ng/mL on {tdm['date']}"
    rows.append(
        Row(
            "TDM",
            tdm_text,
            "warn" if tdm["status"] in ("subtherapeutic", "supratherapeutic") else "",
            tuple(tdm["reasons"]) if tdm["trough_ng_ml"] is not None else (),
        )
    )
    scores = c["risk_scores"]
    rows.append(
        Row(
            "Risk scores",
            "; ".join(score_text(name, s) for name, s in scores.items()) or "none computed",
            "",
            tuple(r for s in scores.values() for r in s["reasons"]),
        )
    )
    due, overdue = c["next_pcr_due"], c["pcr_overdue"]
    pcr = "no schedule" if due is None else f"OVERDUE since {due}" if overdue else f"due by {due}"
    rows.append(
        Row(
            "Next BCR::ABL1 PCR",
            pcr,
            "alert" if overdue else "",
            tuple(c["monitoring"]["reasons"]),
        )
    )
    for i in c["interactions"]:
        rows.append(
            Row(
                "Interaction",
                f"{i['medication']} ({i['effect'].replace('-', ' ')})",
                "warn",
                tuple(i["reasons"]),
            )
        )
    return rows


def therapy_text(t: dict[str, Any]) -> str:
    if t["drug"] is None:
        return str(_THERAPY_STATUS.get(t["status"], t["status"]))
    dose = f" {_number(t['daily_dose_mg'])} mg/day" if t["daily_dose_mg"] is not None else ""
    parts = [f"{t['drug']}{dose}, {_THERAPY_STATUS.get(t['status'], t['status'])}"]
    if t["start"]:
        line = {1: "first line", 2: "second line", 3: "third line"}.get(
            t["line"], f"line {t['line']}"
        )
        months = f" ({t['months_on_therapy']:.1f} months)" if t["months_on_therapy"] else ""
        parts.append(f"{line}, TKI since {t['start']}{months}")
    if t["last_dose_change"]:
        parts.append(f"last dose change {t['last_dose_change']}")
    if t["stopped_on"]:
        why = f" ({t['stop_reason']})" if t["stop_reason"] else ""
        parts.append(f"stopped {t['stopped_on']}{why}")
    return "; ".join(parts)


def latest_text(r: dict[str, Any] | None) -> str:
    if r is None:
        return "none recorded"
    if r["detectable"] and r["is_percent"] is not None:
        factor = r.get("conversion_factor")
        value = f"{pct(r['is_percent'])} IS" + (
            f" (converted with the laboratory's factor {factor:g})" if factor else ""
        )
    elif r["detectable"]:
        value = "detected, not on the IS"
    else:
        value = "not detected"
    copies = (
        f", {r['control_gene'] or 'control gene'} {r['control_copies']:,} copies"
        if r["control_copies"] is not None
        else ", control-gene copies not reported"
    )
    return f"{value} on {r['date']}{copies}"


def eln_text(status: str, milestone: str | None) -> str:
    if status == "not-evaluable":
        return "not evaluable"
    if milestone is None:
        return status
    when = "any time" if milestone == "any" else f"{milestone[:-1]} months"
    return f"{status} ({when})"


def score_text(name: str, s: dict[str, Any]) -> str:
    label = "Sokal" if name == "sokal" else name.upper()
    if s["category"] == "not-evaluable" or s["value"] is None:
        return f"{label} not evaluable"
    return f"{label} {_number(s['value'])} ({s['category']})"


def patient_banner(resources: Sequence[Mapping[str, Any]], patient: str) -> tuple[str, str]:
    """The patient's name and a line of details from the Patient resource, to confirm identity."""
    pid = patient.removeprefix("Patient/")
    found = next(
        (r for r in resources if r.get("resourceType") == "Patient" and r.get("id") == pid), None
    )
    if found is None:
        return patient, ""
    name = human_name(found.get("name")) or patient
    details = []
    if isinstance(found.get("birthDate"), str):
        details.append(f"born {found['birthDate']}")
    if isinstance(found.get("gender"), str):
        details.append(str(found["gender"]))
    details.append(patient)
    return name, " · ".join(details)


def human_name(names: Any, *, prefix: bool = False) -> str | None:
    """A name as written: ``text``, else given names and family name (after the prefix, such
    as "Dr", when ``prefix``: how a clinician is named)."""
    if not isinstance(names, list):
        return None
    for n in names:
        if not isinstance(n, dict):
            continue
        if isinstance(n.get("text"), str) and n["text"].strip():
            return str(n["text"]).strip()
        parts = [p for p in n.get("prefix") or [] if isinstance(p, str)] if prefix else []
        parts += [g for g in n.get("given") or [] if isinstance(g, str)]
        if isinstance(n.get("family"), str):
            parts.append(n["family"])
        text = " ".join(p.strip() for p in parts if p.strip())
        if text:
            return text
    return None


def evidence_labels(record: PatientRecord) -> dict[str, str]:
    """Each input reference in words a clinician can check against the chart."""
    labels: dict[str, str] = {record.patient: "the patient record"}
    for d in record.diagnoses:
        phase = f", {d.phase.value} phase" if d.phase else ""
        onset = f" since {d.onset.isoformat()}" if d.onset else ""
        labels[d.ref] = f"CML diagnosis{phase}{onset}"
    for r in record.bcr_abl1:
        if not r.detectable:
            value = "not detected"
        elif r.is_percent is not None:
            value = f"{pct(r.is_percent)} IS"
        elif r.raw_percent is not None:
            value = f"{pct(r.raw_percent)} (laboratory scale)"
        else:
            value = "detected"
        copies = f", {r.control_copies:,} control copies" if r.control_copies is not None else ""
        labels[r.ref] = f"BCR::ABL1 {value} on {r.date.isoformat()}{copies}"
    for c in record.cytogenetics:
        labels[c.ref] = (
            f"Ph+ {_number(c.ph_positive_percent)} % ({c.method}) on {c.date.isoformat()}"
        )
    for lab in record.labs:
        unit = _LAB_UNITS.get(lab.kind.value, "")
        labels[lab.ref] = f"{lab.kind.value} {_number(lab.value)} {unit} on {lab.date.isoformat()}"
    for h in record.hematologic:
        state = (
            "complete hematologic response" if h.complete else "no complete hematologic response"
        )
        labels[h.ref] = f"{state} on {h.date.isoformat()}"
    for t in record.troughs:
        labels[t.ref] = f"{t.drug.value} trough {_number(t.ng_ml)} ng/mL on {t.date.isoformat()}"
    for m in record.mutations:
        labels[m.ref] = (
            f"kinase-domain mutation {m.mutation or 'detected'} on {m.date.isoformat()}"
            if m.detected
            else f"no kinase-domain mutation found on {m.date.isoformat()}"
        )
    for a in record.adherence:
        labels[a.ref] = f"adherence {'good' if a.adherent else 'poor'} on {a.date.isoformat()}"
    for e in record.adverse_events:
        labels[e.ref] = f"adverse event: {e.description} from {e.date.isoformat()}"
    for s in record.tki:
        dose = f" {_number(s.daily_dose_mg)} mg/day" if s.daily_dose_mg is not None else ""
        start = f" from {s.start.isoformat()}" if s.start else ""
        end = f" to {s.end.isoformat()}" if s.end else ""
        labels[s.ref] = f"{s.drug.value}{dose}{start}{end} ({s.status.value})"
    for o in record.other_medications:
        labels[o.ref] = f"{o.name} ({o.effect.value.replace('-', ' ')} of CYP3A4)"
    return labels


def _sources(contract: dict[str, Any]) -> list[str]:
    """Every published source the page's bases cite, once, in order of first citation."""
    found: dict[str, None] = {}

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if isinstance(value.get("source"), str) and "rule" in value:
                found.setdefault(value["source"], None)
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(contract)
    return list(found)


def _number(value: float) -> str:
    text = f"{value:,.4f}".rstrip("0").rstrip(".")
    return text or "0"
