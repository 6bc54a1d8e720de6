"""Molecular response depth of one BCR::ABL1 result (Cross et al., Leukemia 2015).

A detectable result is classified by its IS value; an undetectable one by the sensitivity of the
sample, i.e. its control-gene copies. Depth deeper than MMR needs an adequate sample: at least
10,000 ABL1 (24,000 GUSB) copies.
"""

from __future__ import annotations

from dataclasses import dataclass

from fhir_cml.domain.frozen import quick_init
from fhir_cml.domain.model import BcrAbl1Result
from fhir_cml.domain.rules.common import copies, pct
from fhir_cml.domain.vocabulary import ControlGene, IssueCode, ResponseDepth

# (depth, IS upper bound %, minimum ABL1 copies, minimum GUSB copies), deepest first.
LEVELS: tuple[tuple[ResponseDepth, float, int, int], ...] = (
    (ResponseDepth.MR5, 0.001, 100_000, 240_000),
    (ResponseDepth.MR4_5, 0.0032, 32_000, 77_000),
    (ResponseDepth.MR4, 0.01, 10_000, 24_000),
)
MMR_LIMIT = 0.1
DEEP = frozenset({ResponseDepth.MR4, ResponseDepth.MR4_5, ResponseDepth.MR5})
ORDER = {
    ResponseDepth.MR5: 5,
    ResponseDepth.MR4_5: 4,
    ResponseDepth.MR4: 3,
    ResponseDepth.MMR: 2,
    ResponseDepth.NO_MMR: 1,
    ResponseDepth.NOT_EVALUABLE: 0,
}


@quick_init
@dataclass(frozen=True, slots=True)
class DepthCall:
    depth: ResponseDepth
    statement: str
    problem: IssueCode | None = None  # why the call is not evaluable or capped
    # The value to compare with IS thresholds: the IS % when detectable, 0 for an undetectable
    # sample adequate for MR4 or deeper, None when the result cannot be compared.
    value: float | None = None

    @property
    def evaluable(self) -> bool:
        return self.depth is not ResponseDepth.NOT_EVALUABLE


def _minimum(level: tuple[ResponseDepth, float, int, int], gene: ControlGene) -> int:
    return level[2] if gene is ControlGene.ABL1 else level[3]


def _sample(result: BcrAbl1Result) -> str:
    if result.control_copies is None:
        return "control-gene copies not reported"
    gene = result.control_gene.value if result.control_gene else "control gene not named"
    return f"{copies(result.control_copies)} {gene} copies"


def classify(result: BcrAbl1Result) -> DepthCall:
    when = result.date.isoformat()
    if result.transcript is not None and not result.transcript.typical:
        return DepthCall(
            ResponseDepth.NOT_EVALUABLE,
            f"Result of {when}: transcript {result.transcript.value} cannot be reported on the "
            "International Scale (only e13a2/e14a2).",
            IssueCode.NOT_TYPICAL_TRANSCRIPT,
        )
    if result.detectable:
        return _detectable(result, when)
    return _undetectable(result, when)


def _detectable(result: BcrAbl1Result, when: str) -> DepthCall:
    value = result.is_percent
    if not result.on_is or value is None:
        return DepthCall(
            ResponseDepth.NOT_EVALUABLE,
            f"Result of {when} is not on the International Scale and has no laboratory conversion "
            "factor: not used for response decisions.",
            IssueCode.NOT_ON_IS,
        )
    if value > MMR_LIMIT:
        return DepthCall(
            ResponseDepth.NO_MMR,
            f"BCR::ABL1 {pct(value)} (IS) on {when} is above 0.1 %: no MMR.",
            None,
            value,
        )
    by_value = next((lvl for lvl in LEVELS if value <= lvl[1]), None)
    if by_value is None:
        return DepthCall(
            ResponseDepth.MMR,
            f"BCR::ABL1 {pct(value)} (IS) on {when} is <= 0.1 % and > 0.01 %: MMR.",
            None,
            value,
        )
    gene, count = result.control_gene, result.control_copies
    if gene is None or count is None:
        return DepthCall(
            ResponseDepth.MMR,
            f"BCR::ABL1 {pct(value)} (IS) on {when} would be {by_value[0].value}, but the sample's "
            f"adequacy cannot be checked ({_sample(result)}); at least 10,000 ABL1 or 24,000 GUSB "
            "copies are needed to call MR4 or deeper, so MMR is reported.",
            IssueCode.MISSING_CONTROL_COPIES,
            value,
        )
    mr4 = LEVELS[2]
    if count < _minimum(mr4, gene):
        return DepthCall(
            ResponseDepth.MMR,
            f"BCR::ABL1 {pct(value)} (IS) on {when} with only {_sample(result)}: fewer than "
            f"{copies(_minimum(mr4, gene))} {gene.value} copies is not adequate to call MR4 or "
            "deeper, so MMR is reported.",
            IssueCode.LOW_CONTROL_COPIES,
            value,
        )
    return DepthCall(
        by_value[0],
        f"BCR::ABL1 {pct(value)} (IS) on {when} is <= {pct(by_value[1])} with {_sample(result)}: "
        f"{by_value[0].value}.",
        None,
        value,
    )


def _undetectable(result: BcrAbl1Result, when: str) -> DepthCall:
    gene, count = result.control_gene, result.control_copies
    if gene is None or count is None:
        return DepthCall(
            ResponseDepth.NOT_EVALUABLE,
            f"BCR::ABL1 not detected on {when}, but {_sample(result)}: the sensitivity of the "
            "sample is unknown, so no response level can be called.",
            IssueCode.MISSING_CONTROL_COPIES,
        )
    for level in LEVELS:
        if count >= _minimum(level, gene):
            note = ""
            if gene is ControlGene.GUSB and level[0] is not ResponseDepth.MR4:
                note = (
                    " (GUSB thresholds for MR4.5/MR5 from Cross 2015; confirm with the laboratory)"
                )
            return DepthCall(
                level[0],
                f"BCR::ABL1 not detected on {when} with {_sample(result)} (at least "
                f"{copies(_minimum(level, gene))} needed): {level[0].value}{note}.",
                None,
                0.0,
            )
    return DepthCall(
        ResponseDepth.NOT_EVALUABLE,
        f"BCR::ABL1 not detected on {when}, but with only {_sample(result)}: fewer than "
        f"{copies(_minimum(LEVELS[2], gene))} {gene.value} copies is not adequate to call a "
        "response level; repeat with an adequate sample.",
        IssueCode.LOW_CONTROL_COPIES,
    )
