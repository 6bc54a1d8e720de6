"""The ConceptMaps from fhir-cml's response codes to the codes other guides use.

Written into ``profiles/input/fsh/generated/conceptmaps.fsh`` by ``generate_fsh.py``. Every
source code of the mapped CodeSystems appears (an ``unmatched`` target where nothing fits), so a
``$translate`` never answers "no map" for a code fhir-cml writes; the tests check that. Target
codes and displays are copied from the published guides named in each map's description.

- mCODE (STU4) Cancer Disease Status: an Observation (LOINC 97509-4) whose value says whether
  the cancer improves, is stable, worsens or cannot be judged (Condition Status Trend value set,
  SNOMED CT). fhir-cml's ELN and TFR readings map to it only inexactly: the ELN categories judge
  the response against a milestone, not the trend of the disease; each comment says how.
- The Danish clinical quality registries (RKKP) KIP implementation guide: the CML response value
  set BehandlingsresponsCML (CHR, CCyR, PCyR, MMR) and the CodeSystem MolecularRemission
  (MR4, MR4.5, MR5).
- fhir-cml's recommendations to the request resources that carry them out (FHIR resource types,
  with the code the request carries as a product): the table of
  fhir_cml.fhir.outbound.requests, the one the builders use.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from fhir_cml import __version__
from fhir_cml.domain.vocabulary import ElnStatus, Recommendation, ResponseDepth, TfrStatus
from fhir_cml.fhir import canonical as c
from fhir_cml.fhir.outbound.requests import REQUESTS
from fhir_cml.fhir.terminology import display


@dataclass(frozen=True, slots=True)
class Target:
    code: str | None  # None: unmatched
    display: str | None
    equivalence: str
    comment: str | None = None
    depends_on: tuple[str, str] | None = None  # (element, value) the mapping needs
    products: tuple[tuple[str, str, str], ...] = ()  # (element, system, code) it also gives


@dataclass(frozen=True, slots=True)
class Group:
    source: str
    target: str | None
    elements: Mapping[str, Sequence[Target]]


@dataclass(frozen=True, slots=True)
class ConceptMapSpec:
    url: str
    name: str
    title: str
    description: str
    purpose: str
    groups: Sequence[Group]
    target_value_set: str | None = None
    notes: Sequence[str] = field(default_factory=tuple)


def unmatched(comment: str) -> Target:
    return Target(None, None, "unmatched", comment)


# mCODE STU4 ValueSet mcode-condition-status-trend-vs (displays: fhir_cml.fhir.terminology).
IMPROVED: Final = "268910001"
STABLE: Final = "359746009"
WORSENED: Final = "271299001"
UNDETERMINED: Final = "709137006"


def _sct(code: str, equivalence: str, comment: str) -> Target:
    return Target(code, display(c.SNOMED, code), equivalence, comment)


MCODE: Final = ConceptMapSpec(
    url=c.CONCEPT_MAP_MCODE,
    name="ResponseToMcodeDiseaseStatus",
    title="fhir-cml response to mCODE cancer disease status",
    description=(
        "From fhir-cml's ELN response categories and treatment-free remission status to the "
        "values of mCODE's Cancer Disease Status (STU4: an Observation coded LOINC 97509-4 whose "
        "value is from the Condition Status Trend value set, "
        f"{c.MCODE_CONDITION_STATUS_TREND_VS}; profile {c.MCODE_DISEASE_STATUS_PROFILE}). "
        "mCODE records a clinician's judgment of the trend of the cancer (improving, stable, "
        "worsening); the ELN categories judge the depth of response against the guideline's "
        "milestone, so most mappings are inexact and each says why. The evidence type of such an "
        "Observation would be laboratory data."
    ),
    purpose=(
        "For sites that keep mCODE Cancer Disease Status Observations: a starting point a "
        "clinician confirms, never an automatic translation."
    ),
    target_value_set=c.MCODE_CONDITION_STATUS_TREND_VS,
    groups=(
        Group(
            c.CS_ELN_RESPONSE,
            c.SNOMED,
            {
                ElnStatus.OPTIMAL.value: [
                    _sct(
                        IMPROVED,
                        "inexact",
                        "Optimal: the disease responds to the TKI as the guideline expects "
                        "(mCODE: improving, responding). In a sustained deep response the "
                        "clinician may judge the disease stable (359746009) instead.",
                    )
                ],
                ElnStatus.WARNING.value: [
                    _sct(
                        UNDETERMINED,
                        "inexact",
                        "Warning: whether the response is adequate is not yet settled; closer "
                        "monitoring decides.",
                    )
                ],
                ElnStatus.SUBOPTIMAL.value: [
                    _sct(
                        UNDETERMINED,
                        "inexact",
                        "ELN 2009 suboptimal: the response is behind the milestone but not a "
                        "failure; closer monitoring decides.",
                    )
                ],
                ElnStatus.FAILURE.value: [
                    _sct(
                        WORSENED,
                        "inexact",
                        "Failure: the response is inadequate or lost. A loss of response is a "
                        "worsening; a milestone failure (e.g. > 10 % at 6 months) may still be a "
                        "falling BCR::ABL1, which the clinician may judge otherwise.",
                    )
                ],
                ElnStatus.NOT_EVALUABLE.value: [
                    _sct(
                        UNDETERMINED,
                        "equivalent",
                        "The record does not allow a reading of the response.",
                    )
                ],
            },
        ),
        Group(
            c.CS_TFR_STATUS,
            c.SNOMED,
            {
                TfrStatus.IN_TFR.value: [
                    _sct(
                        STABLE,
                        "inexact",
                        "Off TKI without molecular relapse so far: the disease stays controlled "
                        "without treatment.",
                    )
                ],
                TfrStatus.MOLECULAR_RELAPSE.value: [
                    _sct(
                        WORSENED,
                        "wider",
                        "Loss of MMR after stopping the TKI is a worsening of the disease.",
                    )
                ],
                TfrStatus.ELIGIBLE.value: [
                    unmatched("Eligibility for a TFR attempt says nothing of the trend.")
                ],
                TfrStatus.NOT_ELIGIBLE.value: [
                    unmatched("Eligibility for a TFR attempt says nothing of the trend.")
                ],
                TfrStatus.NOT_EVALUABLE.value: [
                    unmatched("Eligibility for a TFR attempt says nothing of the trend.")
                ],
            },
        ),
    ),
)

# RKKP KIP implementation guide: ValueSet BehandlingsresponsCML (version 2.14.0) and CodeSystem
# MolecularRemission (2.18.0 build); displays (Danish in the value set): fhir_cml.fhir.terminology.
CHR: Final = "complete_hematological_response"
CCYR: Final = "complete_cytogenetic_response"
PCYR: Final = "partial_cytogenetic_response"
MMR: Final = "major_molecular_response"
MR_CODES: Final = {
    ResponseDepth.MR5: "mr_5",
    ResponseDepth.MR4_5: "mr_4.5",
    ResponseDepth.MR4: "mr_4",
}
NOT_A_RESPONSE: Final = (
    "The registry's value set has no code for it: BehandlingsresponsCML lists the responses "
    "reached (CHR, CCyR, PCyR, MMR), no measurable molecular disease (GenericValues#none) and "
    "unknown (v2-0532 UNK)."
)


def _kip(
    code: str, equivalence: str, comment: str | None = None, *, molecular: bool = False
) -> Target:
    system = c.RKKP_MOLECULAR_REMISSION if molecular else c.RKKP_TREATMENT_RESPONSE
    return Target(code, display(system, code), equivalence, comment)


RKKP: Final = ConceptMapSpec(
    url=c.CONCEPT_MAP_RKKP,
    name="ResponseToRkkp",
    title="fhir-cml response to the Danish registries' CML response codes",
    description=(
        "From fhir-cml's molecular response depth and its local codes for the complete "
        "hematologic response and Ph+ metaphases to the codes of the implementation guide of the "
        "Danish clinical quality registries (RKKP, KIP infrastructure, "
        "https://build.fhir.org/ig/KIP-infrastructure/implementation-guide/): the CML response "
        f"value set BehandlingsresponsCML ({c.RKKP_CML_RESPONSE_VS}, CodeSystem "
        f"{c.RKKP_TREATMENT_RESPONSE}: CHR, CCyR, PCyR, MMR) and the CodeSystem "
        f"{c.RKKP_MOLECULAR_REMISSION} (MR4, MR4.5, MR5). Confirmed against the guide's "
        "ValueSet version 2.14.0 and the CodeSystems of its 2.18.0 continuous build. Not "
        "confirmed: which registry form or profile uses BehandlingsresponsCML (the guide lists it "
        "as used by none of its own profiles); check with the registry before reporting."
    ),
    purpose=(
        "For Danish sites reporting CML response to the registry: the registry's codes for what "
        "fhir-cml reads and concludes."
    ),
    groups=(
        Group(
            c.CS_MOLECULAR_RESPONSE,
            c.RKKP_MOLECULAR_REMISSION,
            {
                **{
                    depth.value: [_kip(MR_CODES[depth], "equivalent", molecular=True)]
                    for depth in (ResponseDepth.MR5, ResponseDepth.MR4_5, ResponseDepth.MR4)
                },
                ResponseDepth.MMR.value: [
                    unmatched(
                        "MMR without a deeper response: see the TreatmentResponseEvaluation group."
                    )
                ],
                ResponseDepth.NO_MMR.value: [unmatched(NOT_A_RESPONSE)],
                ResponseDepth.NOT_EVALUABLE.value: [unmatched(NOT_A_RESPONSE)],
            },
        ),
        Group(
            c.CS_MOLECULAR_RESPONSE,
            c.RKKP_TREATMENT_RESPONSE,
            {
                ResponseDepth.MMR.value: [_kip(MMR, "equivalent")],
                **{
                    depth.value: [
                        _kip(
                            MMR,
                            "subsumes",
                            f"{depth.value} is a major molecular response; the "
                            "MolecularRemission group gives the deeper code.",
                        )
                    ]
                    for depth in (ResponseDepth.MR5, ResponseDepth.MR4_5, ResponseDepth.MR4)
                },
                ResponseDepth.NO_MMR.value: [unmatched(NOT_A_RESPONSE)],
                ResponseDepth.NOT_EVALUABLE.value: [
                    unmatched(
                        "No reading could be made; the value set's unknown (v2-0532 UNK) is for "
                        "a value not recorded."
                    )
                ],
            },
        ),
        Group(
            c.CS_CML,
            c.RKKP_TREATMENT_RESPONSE,
            {
                c.HEMATOLOGIC_RESPONSE: [
                    Target(
                        CHR,
                        display(c.RKKP_TREATMENT_RESPONSE, CHR),
                        "equivalent",
                        "The Observation coded cml#hematologic-response with valueBoolean true.",
                        depends_on=("Observation.valueBoolean", "true"),
                    )
                ],
                c.PH_POSITIVE_METAPHASES: [
                    _kip(
                        CCYR,
                        "narrower",
                        "When 0 % of the metaphases counted are Ph+ (no complete cytogenetic response is Ph+ > 0 %).",
                    ),
                    _kip(
                        PCYR,
                        "narrower",
                        "When 1-35 % of the metaphases counted are Ph+ (no partial cytogenetic response is Ph+ > 35 %).",
                    ),
                ],
            },
        ),
    ),
)

RESOURCE_TYPES: Final = "http://hl7.org/fhir/resource-types"
R = Recommendation
# How each recommendation is carried out (the conditions the builders apply, in words).
REQUEST_COMMENTS: Final = {
    R.PCR_OVERDUE: "A ServiceRequest (profile cml-service-request) for the BCR::ABL1 RQ-PCR; "
    "one request for pcr-overdue, repeat-pcr and schedule-pcr of one assessment (one sample).",
    R.REPEAT_PCR: "A ServiceRequest for the BCR::ABL1 RQ-PCR (shared with pcr-overdue).",
    R.SCHEDULE_PCR: "A ServiceRequest for the BCR::ABL1 RQ-PCR; when scheduling is all it is "
    "for, occurrencePeriod.end is the due date.",
    R.MUTATION_ANALYSIS: "A ServiceRequest for the kinase-domain mutation analysis: the cml "
    "code, and LOINC 69548-6 (Genetic variant assessment), the result the HL7 Genomics Reporting "
    "IG reports a variant with.",
    R.MEASURE_TROUGH_LEVEL: "A ServiceRequest for the imatinib trough level; LOINC 103609-4 "
    "(24 hours post dose) is added only when imatinib is known to be taken once daily.",
    R.ESCALATE_DOSE: "A MedicationRequest (profile cml-medication-request) for imatinib with the "
    "next escalation step as the daily dose (600 mg/day; 800 mg/day as 400 mg twice daily).",
    R.CONSIDER_DOSE_REDUCTION: "A MedicationRequest for the current TKI without a dose: the "
    "guideline gives none, the clinician sets it.",
    R.RESTART_TKI: "A MedicationRequest for the TKI stopped, without a dose; the text says by "
    "when to restart.",
    R.SWITCH_TKI: "A RequestGroup (profile cml-request-group) whose one action holds the options "
    "the rules name (exactly one to choose), each a contained MedicationRequest without a dose; "
    "a switch without named options stays a described CarePlan activity.",
}
# The element of each request type that carries what is proposed.
REQUEST_CODE_ELEMENT: Final = {
    "ServiceRequest": "ServiceRequest.code",
    "MedicationRequest": "MedicationRequest.medication[x]",
    "RequestGroup": "RequestGroup.code",
}


def request_targets(code: Recommendation) -> list[Target]:
    kind = REQUESTS.get(code)
    if kind is None:
        return [
            unmatched(
                "No request resource: the suggestion stays a described CarePlan activity "
                "(CarePlan.activity.detail with this code)."
            )
        ]
    element = REQUEST_CODE_ELEMENT[kind.resource_type]
    return [
        Target(
            kind.resource_type,
            None,
            "relatedto",
            REQUEST_COMMENTS[code],
            products=tuple((element, system, value) for system, value in kind.codes),
        )
    ]


REQUEST_MAP: Final = ConceptMapSpec(
    url=c.CONCEPT_MAP_REQUESTS,
    name="RecommendationToRequest",
    title="fhir-cml recommendations to the requests that carry them out",
    description=(
        "Which FHIR request resource fhir-cml writes for each of its recommendations (the FHIR "
        "workflow request pattern as the HL7 Clinical Practice Guidelines IG applies it: intent "
        "proposal, status draft, referred to from CarePlan.activity.reference), and the code "
        "it carries as a product (ServiceRequest.code). A TKI change names the patient's own "
        "TKI (ATC and RxNorm ingredient), so its medication is not fixed here. Recommendations "
        "no request resource expresses (continue therapy, check adherence, discuss TFR, "
        "intensify monitoring, review interactions) are unmatched: they stay described "
        "activities."
    ),
    purpose=(
        "For ordering workflows and integrators: what a fhir-cml proposal is, so that it can be "
        "turned into an order once a clinician accepts it."
    ),
    groups=(
        Group(
            c.CS_RECOMMENDATION,
            RESOURCE_TYPES,
            {code.value: request_targets(code) for code in Recommendation},
        ),
    ),
)

CONCEPT_MAPS: Final = (MCODE, RKKP, REQUEST_MAP)


def conceptmaps_fsh(header: str, quote: Callable[[str], str], code_of: Callable[[str], str]) -> str:
    """The FSH of every ConceptMap (``quote`` and ``code_of`` are the generator's, so every
    generated file escapes texts and codes alike)."""
    blocks = [header]
    for spec in CONCEPT_MAPS:
        rid = spec.url.rsplit("/", 1)[1]
        lines = [
            f"Instance: {rid}",
            "InstanceOf: ConceptMap",
            f"Title: {quote(spec.title)}",
            "Usage: #definition",
            f"* url = {quote(spec.url)}",
            f"* version = {quote(__version__)}",
            f"* name = {quote(spec.name)}",
            f"* title = {quote(spec.title)}",
            "* status = #draft",
            "* experimental = false",
            f"* description = {quote(spec.description)}",
            f"* purpose = {quote(spec.purpose)}",
        ]
        if spec.target_value_set:
            lines.append(f"* targetCanonical = {quote(spec.target_value_set)}")
        for g, group in enumerate(spec.groups):
            at = f"* group[{g}]"
            lines.append(f"{at}.source = {quote(group.source)}")
            if group.target:
                lines.append(f"{at}.target = {quote(group.target)}")
            for e, (code, targets) in enumerate(group.elements.items()):
                el = f"{at}.element[{e}]"
                lines.append(f"{el}.code = {code_of(code)}")
                for t, target in enumerate(targets):
                    tg = f"{el}.target[{t}]"
                    if target.code is not None:
                        lines.append(f"{tg}.code = {code_of(target.code)}")
                        if target.display:
                            lines.append(f"{tg}.display = {quote(target.display)}")
                    lines.append(f"{tg}.equivalence = #{target.equivalence}")
                    if target.comment:
                        lines.append(f"{tg}.comment = {quote(target.comment)}")
                    for n, (element, system, value) in enumerate(target.products):
                        kind = element.split(".")[0]
                        element_uri = f"http://hl7.org/fhir/StructureDefinition/{kind}#{element}"
                        lines.append(f"{tg}.product[{n}].property = {quote(element_uri)}")
                        lines.append(f"{tg}.product[{n}].system = {quote(system)}")
                        lines.append(f"{tg}.product[{n}].value = {quote(value)}")
                    if target.depends_on:
                        element, value = target.depends_on
                        kind = element.split(".")[0]
                        element_uri = f"http://hl7.org/fhir/StructureDefinition/{kind}#{element}"
                        lines.append(f"{tg}.dependsOn[0].property = {quote(element_uri)}")
                        lines.append(f"{tg}.dependsOn[0].value = {quote(value)}")
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks)
