"""Loss of major molecular response (MMR) after it was achieved.

Unconfirmed: the latest result is > 0.1 % after an earlier result <= 0.1 %. Confirmed: the last two
consecutive readable results are both > 0.1 %. ELN 2013 counts a confirmed loss as failure only
when one of the two is >= 1 %. Results that cannot be read are skipped, never counted either way.
"""

from __future__ import annotations

from collections.abc import Sequence

from fhir_cml.domain.basis import Percent, basis
from fhir_cml.domain.findings import Finding
from fhir_cml.domain.model import BcrAbl1Result
from fhir_cml.domain.results import LossOfMmr
from fhir_cml.domain.rules.catalogue import LOSS_OF_MMR
from fhir_cml.domain.rules.response_depth import MMR_LIMIT, DepthCall


def loss_of_mmr(calls: Sequence[tuple[BcrAbl1Result, DepthCall]]) -> LossOfMmr:
    readable = [(r, c.value) for r, c in calls if c.value is not None]
    first_mmr = next(
        (i for i, (_, v) in enumerate(readable) if v is not None and v <= MMR_LIMIT), None
    )
    if first_mmr is None or not readable:
        return LossOfMmr(False)
    trailing: list[tuple[BcrAbl1Result, float]] = []
    for result, value in reversed(readable[first_mmr + 1 :]):
        if value is None or value <= MMR_LIMIT:
            break
        trailing.append((result, value))
    if not trailing:
        return LossOfMmr(False)
    trailing.reverse()
    achieved = readable[first_mmr][0]
    confirmed = len(trailing) >= 2
    last_two = trailing[-2:]
    confirmed_2013 = confirmed and any(v >= 1.0 for _, v in last_two)
    refs = (achieved.ref, *(r.ref for r, _ in trailing))
    return LossOfMmr(
        True,
        confirmed,
        confirmed_2013,
        basis(
            LOSS_OF_MMR,
            Finding.LOSS_OF_MMR,
            refs,
            achieved=achieved.date,
            limit=Percent(MMR_LIMIT),
            results=tuple((Percent(v), r.date) for r, v in trailing),
            confirmed=confirmed,
        ),
    )
