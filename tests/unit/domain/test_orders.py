"""The checks of a TKI being ordered (the domain's; CDS Hooks only reads the orders and words the
cards): T315I and a higher dose, the highest imatinib step, CYP3A4 interactions."""

from __future__ import annotations

from datetime import date

from fhir_cml.domain.findings import Finding
from fhir_cml.domain.rules.common import add_months
from fhir_cml.domain.rules.orders import Concern, OrderedTki, check_order, latest_t315i
from fhir_cml.domain.rules.therapy import build_therapy
from fhir_cml.domain.vocabulary import Cyp3a4Effect, Recommendation, Tki
from fhir_cml.reporting import say, sentence

from .builders import START, inhibitor, months, mutation, tki

AS_OF = months(12)
THERAPY, _ = build_therapy((tki(),), AS_OF)  # imatinib 400 mg/day since START


def order(drug: Tki = Tki.IMATINIB, dose: float | None = 600) -> OrderedTki:
    return OrderedTki("MedicationRequest/new", drug, dose)


def found(checks: list) -> list[tuple[str, Concern, Finding]]:  # type: ignore[type-arg]
    return [(c.rule.id, c.concern, c.finding) for c in checks]


def test_a_higher_dose_after_t315i_is_critical_and_removes_the_order() -> None:
    t315i = mutation(months(11), "T315I")
    (check,) = check_order(order(), THERAPY, [t315i], [], AS_OF)
    assert (check.rule.id, check.concern, check.topic) == (
        "t315i-no-escalation",
        Concern.CRITICAL,
        Recommendation.SWITCH_TKI,
    )
    assert check.remove_order
    assert sentence(check.finding, check.params) == (
        "T315I present: imatinib escalation to 600 mg/day ordered - escalation does not overcome "
        "T315I"
    )
    assert [b.evidence for b in check.basis] == [
        (t315i.ref,),
        ("MedicationRequest/new", THERAPY.evidence[-1]),
    ]
    assert "imatinib 400 mg/day now; 600 mg/day ordered" in say(check.basis[1]).lower()


def test_no_t315i_check_for_the_same_dose_another_drug_or_an_active_one() -> None:
    t315i = [mutation(months(11), "T315I")]
    assert check_order(order(dose=400), THERAPY, t315i, [], AS_OF) == []
    assert check_order(order(dose=None), THERAPY, t315i, [], AS_OF) == []
    assert check_order(order(Tki.PONATINIB, 45), THERAPY, t315i, [], AS_OF) == []
    assert check_order(order(Tki.DASATINIB, 140), THERAPY, t315i, [], AS_OF) == []


def test_a_later_negative_analysis_clears_t315i_and_a_later_t315i_counts_again() -> None:
    first = mutation(months(6), "T315I")
    clear = mutation(months(8), None, detected=False)
    assert latest_t315i([first, clear], AS_OF) is None
    again = mutation(months(10), "T315I")
    assert latest_t315i([first, clear, again], AS_OF) is again
    assert latest_t315i([mutation(months(13), "T315I")], AS_OF) is None  # after the as-of date
    assert latest_t315i([mutation(months(6), "E255K")], AS_OF) is None


def test_imatinib_above_the_highest_step_is_critical() -> None:
    (check,) = check_order(order(dose=1000), THERAPY, [], [], AS_OF)
    assert found([check]) == [
        ("dose-escalation", Concern.CRITICAL, Finding.ORDER_ABOVE_HIGHEST_STEP)
    ]
    assert check.remove_order
    assert sentence(check.finding, check.params) == (
        "Imatinib 1000 mg/day ordered: above the 800 mg/day maximum"
    )
    assert check.basis[0].evidence == ("MedicationRequest/new",)
    assert check_order(order(dose=800), THERAPY, [], [], AS_OF) == []
    assert check_order(order(Tki.NILOTINIB, 1000), THERAPY, [], [], AS_OF) == []


def test_interactions_say_which_way_they_move_exposure() -> None:
    taken = inhibitor(start=months(11))
    (check,) = check_order(order(dose=400), THERAPY, [], [taken], AS_OF)
    assert (check.concern, check.topic, check.remove_order) == (
        Concern.WARNING,
        Recommendation.REVIEW_INTERACTIONS,
        False,
    )
    assert sentence(check.finding, check.params) == (
        "Imatinib ordered alongside clarithromycin: strong CYP3A4 interaction raises TKI exposure"
    )
    inducer = inhibitor("rifampicin", months(11))
    inducer = type(inducer)(
        inducer.ref, inducer.name, inducer.status, Cyp3a4Effect.STRONG_INDUCER, inducer.start
    )
    (lowers,) = check_order(order(dose=400), THERAPY, [], [inducer], AS_OF)
    assert dict(lowers.params)["effect"] == "lowers"
    (both,) = check_order(order(dose=400), THERAPY, [], [taken, inducer], AS_OF)
    assert dict(both.params)["effect"] == "changes"
    assert dict(both.params)["medications"] == ("clarithromycin", "rifampicin")


def test_critical_checks_come_first() -> None:
    checks = check_order(
        order(dose=1000), THERAPY, [mutation(months(11), "T315I")], [inhibitor()], AS_OF
    )
    assert [c.concern for c in checks] == [Concern.CRITICAL, Concern.CRITICAL, Concern.WARNING]
    assert [c.rule.id for c in checks][:2] == ["t315i-no-escalation", "dose-escalation"]


def test_months_are_added_as_the_rules_count_them() -> None:
    assert add_months(date(2020, 1, 1), 1) == date(2020, 1, 31)
    assert add_months(date(2020, 1, 1), 12) == date(2020, 12, 31)
    assert add_months(START, 0) == START
