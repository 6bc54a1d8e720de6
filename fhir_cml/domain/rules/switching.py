"""Which TKIs act against what: the facts the switch suggestion and the order checks share.

T315I impairs the binding of imatinib and of every second-generation TKI; ponatinib (PACE) and
asciminib (ASCEMBL; the phase 1 study of Hughes et al. 2019 included T315I) act on it (Soverini et
al. 2019, "may be overcome only by ponatinib" at the time of writing).
"""

from __future__ import annotations

from fhir_cml.domain.vocabulary import Tki

T315I_RESISTANT = frozenset({Tki.IMATINIB, Tki.DASATINIB, Tki.NILOTINIB, Tki.BOSUTINIB})
T315I_ACTIVE = (Tki.PONATINIB, Tki.ASCIMINIB)

SECOND_GENERATION = (Tki.DASATINIB, Tki.NILOTINIB, Tki.BOSUTINIB)
# Mutations with clinical evidence of less sensitivity to a second-generation TKI: nilotinib
# (Y253H, E255K/V, F359V/C/I), dasatinib (F317L/V/I/C, V299L, T315A), bosutinib (V299L); T315I
# to all three (Soverini et al. 2019, Table 1; "Selecting optimal second-line tyrosine kinase
# inhibitor therapy", Blood 2009;114:5426).
LESS_SENSITIVE: dict[Tki, frozenset[str]] = {
    Tki.NILOTINIB: frozenset({"Y253H", "Y253F", "E255K", "E255V", "F359V", "F359C", "F359I"}),
    Tki.DASATINIB: frozenset({"F317L", "F317V", "F317I", "F317C", "V299L", "T315A"}),
    Tki.BOSUTINIB: frozenset({"V299L"}),
}


def switch_options(
    failed: Tki | None, line: int, excluded: frozenset[Tki], mutations: frozenset[str]
) -> tuple[Tki, ...]:
    """The TKIs to consider after a failure: never the drug that failed (or one stopped for
    resistance before); after T315I ponatinib or asciminib; otherwise the second-generation TKIs
    the mutations leave effective, and - after a second-generation TKI or in a later line -
    ponatinib and asciminib too."""
    ruled_out = excluded | ({failed} if failed is not None else frozenset())
    third = tuple(d for d in T315I_ACTIVE if d not in ruled_out)
    if "T315I" in mutations:
        return third
    options = [
        d
        for d in SECOND_GENERATION
        if d not in ruled_out and not LESS_SENSITIVE.get(d, frozenset()) & mutations
    ]
    if failed is not Tki.IMATINIB or line > 1 or not options:
        options += third
    return tuple(options)
