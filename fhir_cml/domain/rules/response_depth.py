"""Molecular response depth of one BCR::ABL1 result (Cross et al., Leukemia 2015).

A detectable result is classified by its IS value; an undetectable one by the sensitivity of the
sample, i.e. its control-gene copies. Depth deeper than MMR needs an adequate sample: at least
10,000 ABL1 (24,000 GUSB) copies.
"""

from __future__ import annotations

from dataclasses import dataclass

from fhir_cml.domain.basis import Basis, Copies, Percent, Value, basis
from fhir_cml.domain.findings import Finding
from fhir_cml.domain.frozen import quick_init
from fhir_cml.domain.model import BcrAbl1Result
from fhir_cml.domain.rules.catalogue import DEPTH
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
    basis: Basis
    problem: IssueCode | None = None  # why the call is not evaluable or capped
    # The value to compare with IS thresholds: the IS % when detectable, 0 for an undetectable
    # sample adequate for MR4 or deeper, None when the result cannot be compared.
    value: float | None = None

    @property
    def evaluable(self) -> bool:
        return self.depth is not ResponseDepth.NOT_EVALUABLE


def _minimum(level: tuple[ResponseDepth, float, int, int], gene: ControlGene) -> int:
    return level[2] if gene is ControlGene.ABL1 else level[3]


def _sample(result: BcrAbl1Result) -> dict[str, Value]:
    """The sample's control gene and copies, as the bases name them."""
    copies = Copies(result.control_copies) if result.control_copies is not None else None
    return {"gene": result.control_gene, "copies": copies}


def classify(result: BcrAbl1Result) -> DepthCall:
    ref = (result.ref,)
    if result.transcript is not None and not result.transcript.typical:
        return DepthCall(
            ResponseDepth.NOT_EVALUABLE,
            basis(
                DEPTH,
                Finding.DEPTH_ATYPICAL_TRANSCRIPT,
                ref,
                date=result.date,
                transcript=result.transcript,
            ),
            IssueCode.NOT_TYPICAL_TRANSCRIPT,
        )
    if result.detectable:
        return _detectable(result, ref)
    return _undetectable(result, ref)


def _detectable(result: BcrAbl1Result, ref: tuple[str, ...]) -> DepthCall:
    value = result.is_percent
    when = result.date
    if not result.on_is or value is None:
        return DepthCall(
            ResponseDepth.NOT_EVALUABLE,
            basis(DEPTH, Finding.DEPTH_NOT_ON_IS, ref, date=when),
            IssueCode.NOT_ON_IS,
        )
    shown = Percent(value)
    if value > MMR_LIMIT:
        return DepthCall(
            ResponseDepth.NO_MMR,
            basis(
                DEPTH, Finding.DEPTH_NO_MMR, ref, value=shown, date=when, limit=Percent(MMR_LIMIT)
            ),
            None,
            value,
        )
    by_value = next((lvl for lvl in LEVELS if value <= lvl[1]), None)
    if by_value is None:
        return DepthCall(
            ResponseDepth.MMR,
            basis(
                DEPTH,
                Finding.DEPTH_MMR,
                ref,
                value=shown,
                date=when,
                limit=Percent(MMR_LIMIT),
                deeper=Percent(LEVELS[-1][1]),
            ),
            None,
            value,
        )
    gene, count = result.control_gene, result.control_copies
    mr4 = LEVELS[-1]
    if gene is None or count is None:
        return DepthCall(
            ResponseDepth.MMR,
            basis(
                DEPTH,
                Finding.DEPTH_CAPPED_COPIES_UNKNOWN,
                ref,
                value=shown,
                date=when,
                would_be=by_value[0],
                **_sample(result),
                abl1_needed=Copies(mr4[2]),
                gusb_needed=Copies(mr4[3]),
            ),
            IssueCode.MISSING_CONTROL_COPIES,
            value,
        )
    if count < _minimum(mr4, gene):
        return DepthCall(
            ResponseDepth.MMR,
            basis(
                DEPTH,
                Finding.DEPTH_CAPPED_LOW_COPIES,
                ref,
                value=shown,
                date=when,
                **_sample(result),
                needed=Copies(_minimum(mr4, gene)),
            ),
            IssueCode.LOW_CONTROL_COPIES,
            value,
        )
    return DepthCall(
        by_value[0],
        basis(
            DEPTH,
            Finding.DEPTH_DETECTED,
            ref,
            value=shown,
            date=when,
            limit=Percent(by_value[1]),
            **_sample(result),
            depth=by_value[0],
        ),
        None,
        value,
    )


def _undetectable(result: BcrAbl1Result, ref: tuple[str, ...]) -> DepthCall:
    gene, count = result.control_gene, result.control_copies
    when = result.date
    if gene is None or count is None:
        return DepthCall(
            ResponseDepth.NOT_EVALUABLE,
            basis(
                DEPTH, Finding.DEPTH_UNDETECTED_COPIES_UNKNOWN, ref, date=when, **_sample(result)
            ),
            IssueCode.MISSING_CONTROL_COPIES,
        )
    for level in LEVELS:
        if count >= _minimum(level, gene):
            return DepthCall(
                level[0],
                basis(
                    DEPTH,
                    Finding.DEPTH_UNDETECTED,
                    ref,
                    date=when,
                    **_sample(result),
                    needed=Copies(_minimum(level, gene)),
                    depth=level[0],
                    # GUSB thresholds for MR4.5/MR5 are from Cross 2015: confirm with the laboratory
                    confirm_gusb=gene is ControlGene.GUSB and level[0] is not ResponseDepth.MR4,
                ),
                None,
                0.0,
            )
    return DepthCall(
        ResponseDepth.NOT_EVALUABLE,
        basis(
            DEPTH,
            Finding.DEPTH_UNDETECTED_LOW_COPIES,
            ref,
            date=when,
            **_sample(result),
            needed=Copies(_minimum(LEVELS[-1], gene)),
        ),
        IssueCode.LOW_CONTROL_COPIES,
    )
