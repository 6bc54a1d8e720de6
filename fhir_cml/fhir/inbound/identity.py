"""Which results count: one version per resource, corrections replace what they correct, and a
result sent twice counts once (docs/inbound.md, "Status and identity").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from fhir_cml.domain.vocabulary import IssueCode
from fhir_cml.fhir.inbound.codes import BCR_ABL1_KINDS, Kind
from fhir_cml.fhir.inbound.context import MappingContext, as_dict, as_list, as_str
from fhir_cml.fhir.inbound.loader import Entry
from fhir_cml.fhir.inbound.references import identifier_key

USED_STATUSES: Final = frozenset({"final", "amended", "corrected"})
CORRECTIONS: Final = frozenset({"amended", "corrected"})
# When one sample is reported under several BCR::ABL1 codes, the most direct reading is kept.
_BCR_PREFERENCE: Final = {Kind.BCR_IS: 0, Kind.BCR_NOT_IS: 1, Kind.BCR_LOG: 2, Kind.BCR_E1A2: 3}


@dataclass(slots=True)
class Candidate:
    """A mapped Observation waiting for the identity rules."""

    kind: Kind
    when: str  # the effective date/time as written
    status: str
    item: Any  # the domain value
    ref: str
    res: dict[str, Any]
    order: int

    def recency(self) -> tuple[str, int]:
        issued = self.res.get("issued")
        if type(issued) is not str:
            issued = as_dict(self.res.get("meta")).get("lastUpdated")
        return (issued if type(issued) is str else "", self.order)


def latest_versions(entries: list[Entry], refs: list[str], ctx: MappingContext) -> list[int]:
    """Indexes of the entries to keep: per resource (type and id), the latest version only."""
    seen: dict[str, int] = {}
    repeats: dict[str, int] = {}
    for index, ref in enumerate(refs):
        previous = seen.get(ref)
        if previous is None:
            seen[ref] = index
            continue
        repeats[ref] = repeats.get(ref, 1) + 1
        if _version(entries[index].resource) >= _version(entries[previous].resource):
            seen[ref] = index
    for ref, times in repeats.items():
        kept = entries[seen[ref]].resource
        ctx.info(
            IssueCode.DUPLICATE,
            f"{ref} appears {times} times in the input: only {_version_label(kept)} is used.",
            ref,
        )
    return sorted(seen.values())


def _version(res: dict[str, Any]) -> tuple[int, str, str]:
    meta = as_dict(res.get("meta"))
    version = as_str(meta.get("versionId")) or ""
    numeric = int(version) if version.isdigit() and len(version) < 18 else -1
    updated = as_str(meta.get("lastUpdated")) or ""
    return numeric, version if numeric < 0 else "", updated


def _version_label(res: dict[str, Any]) -> str:
    meta = as_dict(res.get("meta"))
    version = as_str(meta.get("versionId"))
    if version:
        return f"version {version[:20]}"
    updated = as_str(meta.get("lastUpdated"))
    if updated:
        return f"the one last updated {updated[:30]}"
    return "the last one read"


def resolve(candidates: list[Candidate], ctx: MappingContext) -> list[Candidate]:
    """The candidates that count, after corrections and duplicates."""
    by_moment: dict[tuple[Kind, str], list[Candidate]] = {}
    bcr_moments: set[str] = set()
    corrections = collisions = False
    for cand in candidates:
        key = (cand.kind, cand.when)
        group = by_moment.get(key)
        if group is None:
            by_moment[key] = [cand]
        else:
            group.append(cand)
            collisions = True
        if cand.status != "final":
            corrections = True
        if cand.kind in BCR_ABL1_KINDS:
            if cand.when in bcr_moments:
                collisions = True
            bcr_moments.add(cand.when)
    if not corrections and not collisions:
        return candidates  # the common case: nothing to correct or count once
    dropped: set[int] = set()
    if corrections:
        _apply_corrections(candidates, by_moment, dropped, ctx)
    for group in by_moment.values():
        if len(group) > 1:
            _exact_duplicates(group, dropped, ctx)
    kept = [cand for cand in candidates if cand.order not in dropped]
    _same_sample(kept, dropped, ctx)
    return [cand for cand in kept if cand.order not in dropped]


def _identifiers(cand: Candidate) -> list[tuple[str, str]]:
    found = []
    for ident in as_list(cand.res.get("identifier")):
        key = identifier_key(ident)
        if key is not None:
            found.append(key)
    return found


def _apply_corrections(
    candidates: list[Candidate],
    by_moment: dict[tuple[Kind, str], list[Candidate]],
    dropped: set[int],
    ctx: MappingContext,
) -> None:
    by_identifier: dict[tuple[str, str], list[Candidate]] = {}
    for cand in candidates:
        for key in _identifiers(cand):
            by_identifier.setdefault(key, []).append(cand)
    corrections = sorted(
        (cand for cand in candidates if cand.status in CORRECTIONS), key=Candidate.recency
    )
    for fix in corrections:
        if fix.order in dropped:
            continue
        targets = [
            other
            for key in _identifiers(fix)
            for other in by_identifier.get(key, ())
            if other is not fix
        ]
        how = "the same identifier"
        if not targets:
            targets = [other for other in by_moment[(fix.kind, fix.when)] if other is not fix]
            how = "the same code and time"
        for target in targets:
            if target.order in dropped:
                continue
            if target.status in CORRECTIONS and target.recency() > fix.recency():
                continue
            dropped.add(target.order)
            ctx.info(
                IssueCode.SUPERSEDED,
                f"Replaced by the {fix.status} result {fix.ref} ({how}): not used.",
                target.ref,
            )


def _value_key(item: Any) -> tuple[Any, ...]:
    return tuple(getattr(item, name) for name in item.__slots__ if name != "ref")


def _exact_duplicates(group: list[Candidate], dropped: set[int], ctx: MappingContext) -> None:
    seen: dict[tuple[Any, ...], Candidate] = {}
    for cand in group:
        if cand.order in dropped:
            continue
        key = _value_key(cand.item)
        first = seen.get(key)
        if first is None:
            seen[key] = cand
            continue
        dropped.add(cand.order)
        ctx.info(
            IssueCode.DUPLICATE,
            f"Same code, time and value as {first.ref}: counted once.",
            cand.ref,
        )


def _same_sample(kept: list[Candidate], dropped: set[int], ctx: MappingContext) -> None:
    """One sample reported as IS % and as a log reduction (or both) is one result, not two.

    Two results at one moment would otherwise count as two consecutive tests (e.g. a confirmed
    loss of MMR) from a single sample.
    """
    by_when: dict[str, list[Candidate]] = {}
    for cand in kept:
        if cand.kind in BCR_ABL1_KINDS:
            by_when.setdefault(cand.when, []).append(cand)
    for group in by_when.values():
        if len(group) < 2 or len({cand.kind for cand in group}) < 2:
            continue
        group.sort(key=lambda cand: _BCR_PREFERENCE[cand.kind])
        best = group[0]
        for other in group[1:]:
            if other.kind is best.kind:
                continue
            dropped.add(other.order)
            if _agree(best.item.is_percent, other.item.is_percent):
                ctx.info(
                    IssueCode.DUPLICATE,
                    f"Same sample time as {best.ref} ({best.kind.value}), reported as "
                    f"{other.kind.value}: counted once, as {best.ref}.",
                    other.ref,
                )
            else:
                ctx.warn(
                    IssueCode.AMBIGUOUS,
                    f"Same sample time as {best.ref} ({best.kind.value}) but a different value "
                    f"as {other.kind.value}: {best.ref} is used; check which is right.",
                    other.ref,
                )


def _agree(first: float | None, second: float | None) -> bool:
    if first is None or second is None:
        return True
    return abs(first - second) <= 0.05 * max(abs(first), abs(second))
