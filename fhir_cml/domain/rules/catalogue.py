"""Every rule the engine applies, with the primary literature a clinician can look up.

One entry per rule. The milestone rules come from the guideline tables
(:mod:`fhir_cml.domain.guidelines`), one per row; the others are written here. Each names its
citations (:mod:`fhir_cml.domain.citations`) and the table or section it reads; where a value is a
project convention rather than a published one, the title says so.
"""

from __future__ import annotations

from fhir_cml.domain import citations as c
from fhir_cml.domain.basis import Value, basis
from fhir_cml.domain.findings import Finding
from fhir_cml.domain.guidelines import eln2009, eln2013, eln2020
from fhir_cml.domain.model import Issue
from fhir_cml.domain.rule import RULES, RULESET_VERSION, Rule, rule
from fhir_cml.domain.vocabulary import IssueCode, Milestone, Severity
from fhir_cml.domain.vocabulary import Recommendation as R

__all__ = ["RULES", "RULESET_VERSION", "Rule"]


def _table_rule(table: object, milestone: Milestone) -> Rule:
    row = table.row(milestone)  # type: ignore[attr-defined]
    assert row is not None
    found: Rule = row.rule
    return found


# 0. Reading the record
INPUTS = rule(
    "inputs",
    "What is read: nothing dated after the as-of date; TKI statements that do not describe intake "
    "are left out; a stop without a recorded reason after more than 2 years of deep molecular "
    "response is read as a TFR attempt; every such choice is listed (project convention)",
    (),
)

# 1. Molecular response depth
DEPTH = rule(
    "response-depth",
    "Molecular response depth from BCR::ABL1 (IS) and control-gene copies: a detectable result by "
    "its IS value, an undetectable one by the copies of its control gene",
    (c.CROSS2015,),
    "definitions of MR4, MR4.5 and MR5",
    leads_to=(R.REPEAT_PCR,),
)
IS_CONVERSION = rule(
    "is-conversion",
    "Only results on the International Scale (or converted with a laboratory conversion factor) "
    "are used for response decisions",
    (c.CROSS2015,),
)
CHR = rule(
    "complete-hematologic-response",
    "Complete hematologic response: WBC < 10 x10^9/L, platelets < 450 x10^9/L, basophils < 5 %, "
    "no immature granulocytes or blasts in peripheral blood, spleen not palpable",
    (c.ELN2013,),
    "response definitions",
)

# 2. Milestones: one rule per row of each guideline table
ELN2020_BASELINE = _table_rule(eln2020.TABLE, Milestone.BASELINE)
ELN2020_3M = _table_rule(eln2020.TABLE, Milestone.M3)
ELN2020_6M = _table_rule(eln2020.TABLE, Milestone.M6)
ELN2020_12M = _table_rule(eln2020.TABLE, Milestone.M12)
ELN2020_ANY = _table_rule(eln2020.TABLE, Milestone.ANY)
ELN2013_BASELINE = _table_rule(eln2013.TABLE, Milestone.BASELINE)
ELN2013_3M = _table_rule(eln2013.TABLE, Milestone.M3)
ELN2013_6M = _table_rule(eln2013.TABLE, Milestone.M6)
ELN2013_12M = _table_rule(eln2013.TABLE, Milestone.M12)
ELN2013_ANY = _table_rule(eln2013.TABLE, Milestone.ANY)
ELN2009_BASELINE = _table_rule(eln2009.TABLE, Milestone.BASELINE)
ELN2009_3M = _table_rule(eln2009.TABLE, Milestone.M3)
ELN2009_6M = _table_rule(eln2009.TABLE, Milestone.M6)
ELN2009_12M = _table_rule(eln2009.TABLE, Milestone.M12)
ELN2009_18M = _table_rule(eln2009.TABLE, Milestone.M18)
ELN2009_ANY = _table_rule(eln2009.TABLE, Milestone.ANY)
MILESTONE_WINDOW = rule(
    "milestone-window",
    "Which result is read at a milestone: the one nearest to it among those whose time on TKI falls "
    "in its window (from the configured tolerance before it to the next milestone's window); a "
    "later result in the window can make the reading worse, never better; after the last "
    "milestone results are read against the 'any time' criteria (project convention)",
    (c.ELN2020, c.ELN2013),
)
LOSS_OF_MMR = rule(
    "loss-of-mmr",
    "Loss of MMR: a result > 0.1 % after MMR was achieved; confirmed by a second consecutive "
    "result > 0.1 % (ELN 2013: one of the two >= 1 %)",
    (c.ELN2020, c.ELN2013),
    leads_to=(R.REPEAT_PCR,),
)

# 3. What to do about the response
ESCALATION_WORKUP = rule(
    "escalation-workup",
    "Before any change of dose or drug for a warning or failure: check adherence, measure an "
    "imatinib trough level, and test for kinase-domain mutations",
    (c.ELN2020, c.SOVERINI2019, c.PICARD2007),
    leads_to=(R.CHECK_ADHERENCE, R.MEASURE_TROUGH_LEVEL, R.MUTATION_ANALYSIS),
)
MUTATION_ANALYSIS = rule(
    "mutation-analysis",
    "BCR::ABL1 kinase-domain mutation analysis in chronic phase at failure or warning of the "
    "response to TKI (not for a baseline warning alone); after a relapse off treatment only if MMR "
    "is not regained within 3-6 months of restarting the TKI",
    (c.SOVERINI2019,),
    "Table 2, indications for mutation testing",
    leads_to=(R.MUTATION_ANALYSIS,),
)
ESCALATION = rule(
    "dose-escalation",
    "Suboptimal response on imatinib with a steady-state trough below target (adherence checked) "
    "or a dose-sensitive mutation (M351T, L384M): escalate 400 -> 600 -> 800 mg/day; 800 mg/day "
    "(400 mg twice daily) is the highest step",
    (c.IRIS_ESCALATION2009, c.PICARD2007),
    leads_to=(R.ESCALATE_DOSE,),
)
T315I = rule(
    "t315i-no-escalation",
    "T315I impairs the binding of imatinib and of every second-generation TKI: never escalate; "
    "switch to ponatinib or asciminib",
    (c.SOVERINI2019, c.PACE2013, c.ASCIMINIB2019),
    leads_to=(R.SWITCH_TKI,),
)
SWITCH = rule(
    "switch-tki",
    "Failure, resistance mutations or intolerance favour switching to another TKI, chosen by the "
    "drug that failed, the line of therapy and the mutation profile; never the drug that failed",
    (c.ELN2020, c.SOVERINI2019, c.PACE2013, c.ASCIMINIB2019),
    leads_to=(R.SWITCH_TKI,),
)
REDUCTION = rule(
    "dose-reduction",
    "Stable MMR for at least 1-2 years with adverse events affecting quality of life (or a "
    "supratherapeutic trough with toxicity): consider a dose reduction, then monitor closely "
    "(every 4-6 weeks for 6-12 months, project default)",
    (c.DESTINY2017, c.ELN2020),
    leads_to=(R.CONSIDER_DOSE_REDUCTION,),
)
CONTINUE = rule(
    "continue-therapy",
    "Optimal response: continue the current TKI and dose",
    (c.ELN2020,),
    leads_to=(R.CONTINUE_THERAPY,),
)

# 4. Therapeutic drug monitoring and interactions
TDM = rule(
    "tdm-reading",
    "Imatinib trough at steady state, drawn immediately before the next dose (the time since the "
    "last dose must be known): below the 1000 ng/mL target subtherapeutic; at or above "
    "2000 ng/mL supratherapeutic (toxicity watch). Steady state: >= 29 days of therapy and >= 8 "
    "days without a dose change (a reference laboratory's conditions, configurable)",
    (c.PICARD2007,),
)
INTERACTIONS = rule(
    "cyp3a4-interactions",
    "Strong CYP3A4 inhibitors raise and strong inducers lower TKI exposure: review the "
    "co-medication, consider TDM",
    (c.IMATINIB_LABEL,),
    leads_to=(R.REVIEW_INTERACTIONS, R.MEASURE_TROUGH_LEVEL),
)

# 5. Treatment-free remission
TFR_ELIGIBILITY = rule(
    "tfr-eligibility",
    "ELN 2020 TFR requirements: mandatory (chronic phase, motivated patient with structured "
    "communication, access to high-quality quantitative PCR on the IS with rapid results, "
    "willingness to monitor more often), minimal (first-line TKI or second line for intolerance "
    "only, e13a2/e14a2 transcript, TKI > 5 years (> 4 years 2G-TKI), MR4 or deeper > 2 years, no "
    "prior treatment failure), optimal (TKI > 5 years; DMR > 3 years at MR4 or > 2 years at MR4.5)",
    (c.ELN2020,),
    "requirements for TKI discontinuation",
    leads_to=(R.DISCUSS_TFR,),
)
TFR_RELAPSE = rule(
    "tfr-molecular-relapse",
    "After stopping TKI, loss of MMR (one result > 0.1 %) is molecular relapse: restart the same "
    "TKI within 4 weeks; monitor every 4-6 weeks until MMR is regained; mutation analysis only if "
    "MMR is not regained within 3-6 months; the relapse off treatment is not an on-treatment "
    "failure",
    (c.ELN2020, c.SOVERINI2019, c.STOP2G2017),
    leads_to=(R.RESTART_TKI, R.INTENSIFY_MONITORING, R.MUTATION_ANALYSIS),
)
STIM1 = rule(
    "stim1-relapse",
    "STIM1 definition of molecular relapse: two consecutive positive results one month apart with "
    "a >= 1-log increase (imatinib; reported for comparison only)",
    (c.STIM2010,),
)
PAEDIATRIC = rule(
    "paediatric",
    "Patients under 18: TFR attempts only within clinical studies; adult guidance (ELN) and adult "
    "risk scores (Sokal, ELTS, EUTOS) are applied with that caution",
    (c.PAEDIATRIC2014, c.PAEDIATRIC2016),
)

# 6. Monitoring
MONITORING = rule(
    "monitoring-schedule",
    "RQ-PCR every 3 months on TKI (monthly during the first 3 months, project default); after a "
    "dose reduction every 4-6 weeks for 6-12 months; after stopping TKI monthly for months 1-6, "
    "every 2 months for months 7-12, every 3 months after; after a restart every 4-6 weeks until "
    "MMR is regained",
    (c.ELN2020, c.DESTINY2017),
    leads_to=(R.SCHEDULE_PCR, R.PCR_OVERDUE, R.INTENSIFY_MONITORING),
)

# 7. Risk scores
SOKAL = rule(
    "sokal",
    "Sokal score at baseline: < 0.8 low, 0.8-1.2 intermediate, > 1.2 high (derived in adults)",
    (c.SOKAL1984,),
)
ELTS = rule(
    "elts",
    "ELTS score at baseline: <= 1.5680 low, <= 2.2185 intermediate, > 2.2185 high (derived in "
    "adults); ELN 2020 prefers ELTS to Sokal where they disagree",
    (c.ELTS2016, c.ELN2020),
)
EUTOS = rule(
    "eutos",
    "EUTOS score at baseline: <= 87 low, > 87 high (derived in adults)",
    (c.EUTOS2011,),
)

# 8. Trial evidence
IRIS_PROGRESSION = rule(
    "iris-progression",
    "IRIS 5-year freedom from progression to AP/BC by the response at 12 months (first-line "
    "imatinib, chronic phase, on treatment; not after a relapse, not with a resistance mutation)",
    (c.IRIS2006,),
)
TFR_OUTCOMES = rule(
    "tfr-outcomes",
    "Molecular relapse after stopping imatinib in STIM1 (its own relapse definition): 39 % "
    "relapse-free at 36 months; most relapses within 6 months",
    (c.STIM2010,),
)
ESCALATION_OUTCOMES = rule(
    "iris-escalation-outcomes",
    "IRIS dose escalation on first-line imatinib: 42 % reached a subsequent cytogenetic response; "
    "3 years after escalation 89 % free from progression, 84 % overall survival (figures as "
    "quoted; not confirmed in the paper)",
    (c.IRIS_ESCALATION2009,),
)


def input_issue(
    severity: Severity,
    code: IssueCode,
    resource: str | None,
    finding: Finding,
    evidence: tuple[str, ...] = (),
    **params: Value,
) -> Issue:
    """A data issue the rules raise about their inputs (worded by the renderers, like a basis)."""
    return Issue(severity, code, "", resource, basis(INPUTS, finding, evidence, **params))
