"""Every rule the engine applies, with the source a clinician can look up.

One entry per rule. The id is stable and appears in every basis, in the FHIR output and as the
PlanDefinition name in profiles/; the source names the guideline or document (and its table) the
rule reads. ``RULESET_VERSION`` changes whenever any rule's behaviour changes: it is part of the
identifiers of what is written back, so a new version yields new suggestions.
"""

from __future__ import annotations

from dataclasses import dataclass

from fhir_cml.domain.vocabulary import Recommendation as R

RULESET_VERSION = "1.0.0"

CROSS_2015 = (
    "Cross NCP et al. Laboratory recommendations for scoring deep molecular responses following "
    "treatment for chronic myeloid leukemia. Leukemia 2015;29:999-1003"
)
ELN_2020 = (
    "Hochhaus A et al. European LeukemiaNet 2020 recommendations for treating chronic myeloid "
    "leukemia. Leukemia 2020;34:966-984"
)
ELN_2013 = (
    "Baccarani M et al. European LeukemiaNet recommendations for the management of chronic "
    "myeloid leukemia: 2013. Blood 2013;122:872-884"
)
ELN_2009 = (
    "Baccarani M et al. Chronic myeloid leukemia: an update of concepts and management "
    "recommendations of European LeukemiaNet. J Clin Oncol 2009;27:6041-6051"
)
SEED_ESCALATION = (
    "Imatinib dose escalation strategies (seed 003), table 'ELN criteria for escalation'"
)
SEED_DOSE = "Imatinib dose optimization strategies and clinical evidence (seed 002)"
SEED_MONITORING = "Imatinib clinical trial validation, major molecular response (seed 000)"
SEED_REVIEW = "Imatinib in CML: pharmacology, trials and discontinuation studies (seed 004)"
SOKAL_1984 = "Sokal JE et al. Prognostic discrimination in 'good-risk' CML. Blood 1984;63:789-799"
ELTS_2016 = (
    "Pfirrmann M et al. Prognosis of long-term survival considering disease-specific death in "
    "patients with CML (ELTS score). Leukemia 2016;30:48-56"
)
EUTOS_2011 = "Hasford J et al. Predicting complete cytogenetic response: the EUTOS score. Blood 2011;118:686-692"
STIM1_2010 = (
    "Mahon FX et al. Discontinuation of imatinib in patients with CML who have maintained "
    "complete molecular remission for at least 2 years (STIM). Lancet Oncol 2010;11:1029-1035"
)


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    title: str
    source: str
    guideline: str | None = None  # eln2020 | eln2013 | eln2009 when the rule belongs to one
    leads_to: tuple[R, ...] = ()  # the suggestions this rule can give (its PlanDefinition actions)

    @property
    def version(self) -> str:
        return RULESET_VERSION


def _rule(
    rule_id: str,
    title: str,
    source: str,
    guideline: str | None = None,
    leads_to: tuple[R, ...] = (),
) -> Rule:
    rule = Rule(rule_id, title, source, guideline, leads_to)
    RULES[rule_id] = rule
    return rule


RULES: dict[str, Rule] = {}

# 1. Molecular response depth
DEPTH = _rule(
    "response-depth",
    "Molecular response depth from BCR::ABL1 (IS) and control-gene copies",
    CROSS_2015 + "; clinical-rules section 1",
    leads_to=(R.REPEAT_PCR,),
)
IS_CONVERSION = _rule(
    "is-conversion",
    "Only results on the International Scale (or converted with a laboratory conversion factor) "
    "are used for response decisions",
    CROSS_2015,
)
CHR = _rule(
    "complete-hematologic-response",
    "Complete hematologic response: WBC < 10 x10^9/L, platelets < 450 x10^9/L, basophils < 5 %, "
    "no blasts in peripheral blood, spleen not palpable",
    ELN_2013 + ", response definitions",
)

# 2. Milestones
ELN2020_BASELINE = _rule(
    "eln2020-baseline",
    "ELN 2020 baseline warning: high-risk ELTS or high-risk ACA",
    ELN_2020,
    "eln2020",
)
ELN2020_3M = _rule(
    "eln2020-3m",
    "ELN 2020 at 3 months: optimal <= 10 %; warning > 10 %; failure > 10 % confirmed within 1-3 months",
    ELN_2020 + ", milestone table",
    "eln2020",
    leads_to=(R.REPEAT_PCR,),
)
ELN2020_6M = _rule(
    "eln2020-6m",
    "ELN 2020 at 6 months: optimal <= 1 %; warning > 1-10 %; failure > 10 %",
    ELN_2020 + ", milestone table",
    "eln2020",
)
ELN2020_12M = _rule(
    "eln2020-12m",
    "ELN 2020 at 12 months: optimal <= 0.1 %; warning > 0.1-1 %; failure > 1 %",
    ELN_2020 + ", milestone table",
    "eln2020",
)
ELN2020_ANY = _rule(
    "eln2020-any",
    "ELN 2020 at any time: optimal <= 0.1 %; warning > 0.1-1 % or loss of MMR; failure > 1 %, "
    "resistance mutations, high-risk ACA; loss of MMR after stopping TKI is failure",
    ELN_2020 + ", milestone table",
    "eln2020",
)
ELN2013_3M = _rule(
    "eln2013-3m",
    "ELN 2013 at 3 months: optimal <= 10 % and/or Ph+ <= 35 %; warning > 10 % and/or Ph+ 36-95 %; "
    "failure no CHR and/or Ph+ > 95 %",
    ELN_2013 + ", response to first-line TKI",
    "eln2013",
)
ELN2013_6M = _rule(
    "eln2013-6m",
    "ELN 2013 at 6 months: optimal < 1 % and/or Ph+ 0; warning 1-10 % and/or Ph+ 1-35 %; "
    "failure > 10 % and/or Ph+ > 35 %",
    ELN_2013 + ", response to first-line TKI",
    "eln2013",
)
ELN2013_12M = _rule(
    "eln2013-12m",
    "ELN 2013 at 12 months: optimal <= 0.1 %; warning > 0.1-1 %; failure > 1 % and/or Ph+ > 0",
    ELN_2013 + ", response to first-line TKI",
    "eln2013",
)
ELN2013_ANY = _rule(
    "eln2013-any",
    "ELN 2013 then and at any time: optimal MMR or better; warning > 0.1 %; failure loss of CHR, "
    "loss of CCyR, confirmed loss of MMR (2 consecutive tests, one >= 1 %), mutations, clonal "
    "chromosome abnormalities in Ph+ cells",
    ELN_2013 + ", response to first-line TKI",
    "eln2013",
)
ELN2009_3M = _rule(
    "eln2009-3m",
    "At 3 months, no complete hematologic response is a suboptimal response",
    SEED_ESCALATION,
    "eln2009",
)
ELN2009_6M = _rule(
    "eln2009-6m",
    "At 6 months, no partial cytogenetic response (Ph+ > 35 %) is a suboptimal response; "
    "no cytogenetic response (Ph+ > 95 %) is failure",
    SEED_ESCALATION + "; failure: " + ELN_2009,
    "eln2009",
)
ELN2009_12M = _rule(
    "eln2009-12m",
    "At 12 months, no complete cytogenetic response (Ph+ > 0 %) is a suboptimal response; "
    "less than partial cytogenetic response (Ph+ > 35 %) is failure",
    SEED_ESCALATION + "; failure: " + ELN_2009,
    "eln2009",
)
ELN2009_18M = _rule(
    "eln2009-18m",
    "At 18 months, no MMR is a suboptimal response; less than complete cytogenetic response "
    "(Ph+ > 0 %) is failure",
    SEED_ESCALATION + "; failure: " + ELN_2009,
    "eln2009",
)
ELN2009_ANY = _rule(
    "eln2009-any",
    "At any time, loss of CHR, CCyR or MMR or new clonal chromosomal abnormalities is a "
    "suboptimal response; a mutation poorly sensitive to imatinib (T315I) is failure",
    SEED_ESCALATION + "; failure: " + ELN_2009,
    "eln2009",
)
MILESTONE_WINDOW = _rule(
    "milestone-window",
    "A result is read against the latest milestone whose window has opened (window opens the "
    "configured tolerance before the milestone); after the last milestone it is read as 'any time'",
    "Project convention over " + ELN_2020 + " and " + ELN_2013,
)
LOSS_OF_MMR = _rule(
    "loss-of-mmr",
    "Loss of MMR: a result > 0.1 % after MMR was achieved; confirmed by a second consecutive "
    "result > 0.1 % (ELN 2013: one of the two >= 1 %)",
    ELN_2020 + "; " + ELN_2013,
    leads_to=(R.REPEAT_PCR,),
)

# 3. Dose optimisation
ESCALATION_WORKUP = _rule(
    "escalation-workup",
    "Before escalating imatinib: check adherence, measure the trough level, test for kinase-domain "
    "mutations",
    SEED_DOSE + ", FAQ Q1; " + SEED_ESCALATION,
    leads_to=(R.CHECK_ADHERENCE, R.MEASURE_TROUGH_LEVEL, R.MUTATION_ANALYSIS),
)
ESCALATION = _rule(
    "dose-escalation",
    "Suboptimal response on imatinib with a trough < 1000 ng/mL (adherence checked) or a "
    "dose-sensitive mutation (M351T, L384M): escalate 400 -> 600 -> 800 mg/day",
    SEED_ESCALATION + "; " + SEED_DOSE,
    leads_to=(R.ESCALATE_DOSE,),
)
T315I = _rule(
    "t315i-no-escalation",
    "T315I confers absolute resistance to imatinib: never escalate, switch TKI",
    SEED_ESCALATION,
    leads_to=(R.SWITCH_TKI,),
)
SWITCH = _rule(
    "switch-tki",
    "Failure, resistance mutations or intolerance favour switching to another TKI guided by the "
    "mutation profile",
    SEED_ESCALATION + "; " + ELN_2020,
    leads_to=(R.SWITCH_TKI,),
)
REDUCTION = _rule(
    "dose-reduction",
    "Stable MMR for at least 1-2 years with adverse events affecting quality of life (or a "
    "supratherapeutic trough with toxicity): consider a dose reduction, then monitor every "
    "4-6 weeks for 6-12 months",
    SEED_DOSE + ", protocol 1 and FAQ Q2",
    leads_to=(R.CONSIDER_DOSE_REDUCTION,),
)
CONTINUE = _rule(
    "continue-therapy",
    "Optimal response: continue the current TKI and dose",
    ELN_2020,
    leads_to=(R.CONTINUE_THERAPY,),
)

# 4. Therapeutic drug monitoring
TDM = _rule(
    "tdm-reading",
    "Imatinib trough at steady state (>= 29 days of therapy, >= 8 days without a dose change, drawn "
    "immediately before the next dose): < 1000 ng/mL subtherapeutic; >= 2000 ng/mL "
    "supratherapeutic (toxicity watch)",
    SEED_DOSE + ", protocol 2; " + SEED_REVIEW,
)
INTERACTIONS = _rule(
    "cyp3a4-interactions",
    "Strong CYP3A4 inhibitors raise and strong inducers lower TKI exposure: review, consider TDM",
    SEED_REVIEW + "; clinical-rules section 4",
    leads_to=(R.REVIEW_INTERACTIONS, R.MEASURE_TROUGH_LEVEL),
)

# 5. TFR
TFR_ELIGIBILITY = _rule(
    "tfr-eligibility",
    "ELN 2020 TFR criteria: mandatory (chronic phase, IS qPCR, motivated and adherent), minimal "
    "(first-line or intolerance-only second line, e13a2/e14a2, TKI > 5 y imatinib or > 4 y "
    "2G-TKI, MR4 or deeper > 2 y, no prior failure), optimal (TKI > 5 y; DMR > 3 y at MR4 or > 2 y "
    "at MR4.5)",
    ELN_2020 + ", TFR requirements",
    leads_to=(R.DISCUSS_TFR,),
)
TFR_RELAPSE = _rule(
    "tfr-molecular-relapse",
    "After stopping TKI, loss of MMR (one result > 0.1 %) is molecular relapse: restart TKI within "
    "4 weeks",
    ELN_2020 + "; " + SEED_REVIEW,
    leads_to=(R.RESTART_TKI,),
)
STIM1 = _rule(
    "stim1-relapse",
    "STIM1 definition of molecular relapse: two consecutive positive results one month apart with "
    "a >= 1-log increase (reported for comparison only)",
    STIM1_2010 + "; " + SEED_REVIEW,
)

# 6. Monitoring
MONITORING = _rule(
    "monitoring-schedule",
    "RQ-PCR monthly during the first 3 months, then every 3 months; every 4-6 weeks for 6-12 "
    "months after a dose reduction; after stopping TKI monthly for months 1-6, every 2 months for "
    "months 7-12, every 3 months after",
    SEED_MONITORING + "; " + SEED_DOSE + "; " + SEED_REVIEW,
    leads_to=(R.SCHEDULE_PCR, R.PCR_OVERDUE, R.INTENSIFY_MONITORING),
)

# 7. Risk scores
SOKAL = _rule(
    "sokal", "Sokal score at baseline: < 0.8 low, 0.8-1.2 intermediate, > 1.2 high", SOKAL_1984
)
ELTS = _rule(
    "elts",
    "ELTS score at baseline: <= 1.5680 low, <= 2.2185 intermediate, > 2.2185 high",
    ELTS_2016,
)
EUTOS = _rule("eutos", "EUTOS score at baseline: <= 87 low, > 87 high", EUTOS_2011)

# 8. Prognosis
IRIS_PROGRESSION = _rule(
    "iris-progression",
    "IRIS 5-year freedom from progression to AP/BC: 100 % with CCyR and MMR at 12 months, 98 % "
    "with CCyR without MMR, 87 % without CCyR",
    SEED_REVIEW + " (IRIS 5-year follow-up)",
)
TFR_OUTCOMES = _rule(
    "tfr-outcomes",
    "Treatment-free remission after stopping imatinib: STIM1 39 % relapse-free at 36 months; "
    "STIM2 61 % at a median of 12 months; TWISTER 47.1 % at 24 months; most relapses within 6 months",
    SEED_REVIEW,
)
ESCALATION_OUTCOMES = _rule(
    "iris-escalation-outcomes",
    "IRIS dose escalation: 42 % reached a subsequent cytogenetic response; 3 years after "
    "escalation 89 % free from progression, 84 % overall survival",
    SEED_ESCALATION,
)
