"""Which TKIs act against what: the facts the switch suggestion and the order checks share.

T315I impairs the binding of imatinib and of every second-generation TKI; ponatinib (PACE) and
asciminib (ASCEMBL; the phase 1 study of Hughes et al. 2019 included T315I) act on it (Soverini et
al. 2019, "may be overcome only by ponatinib" at the time of writing).
"""

from __future__ import annotations

from fhir_cml.domain.vocabulary import Tki

T315I_RESISTANT = frozenset({Tki.IMATINIB, Tki.DASATINIB, Tki.NILOTINIB, Tki.BOSUTINIB})
T315I_ACTIVE = (Tki.PONATINIB, Tki.ASCIMINIB)
