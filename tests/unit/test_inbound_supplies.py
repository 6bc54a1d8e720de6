"""TKI courses from US Core MedicationRequests, dispenses and administrations: renewals, dose
changes, interruptions, and precedence over (and de-duplication against) MedicationStatements."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from fhir_cml.domain import assess
from fhir_cml.domain.rules.therapy import MAX_SUPPLY_GAP_DAYS
from fhir_cml.domain.vocabulary import Guideline, IssueCode, MedicationStatus, TherapyStatus, Tki
from fhir_cml.fhir import canonical as c
from fhir_cml.reporting.words import issue_message
from tests.unit.inbound_builders import (
    PATIENT,
    bcr,
    codes,
    concept,
    imatinib,
    once_daily,
    qty,
    record,
    statement,
)

AS_OF = date(2025, 6, 30)


def order(
    rid: str,
    authored: str,
    mg: float = 400,
    *,
    status: str = "completed",
    days: int | None = 90,
    medication: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A US Core MedicationRequest: RxNorm code, authoredOn, a 90-day supply."""
    out: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": rid,
        "status": status,
        "intent": "order",
        "subject": {"reference": PATIENT},
        "authoredOn": authored,
        "medicationCodeableConcept": medication or concept(c.RXNORM, "282388"),
        "dosageInstruction": [
            {"timing": once_daily(), "doseAndRate": [{"doseQuantity": qty(mg, "mg")}]}
        ],
    }
    if days is not None:
        out["dispenseRequest"] = {"expectedSupplyDuration": {"value": days, "code": "d"}}
    out.update(extra)
    return out


def therapy_of(*resources: dict[str, Any]) -> Any:
    rec = record(bcr(0.05, effectiveDateTime="2025-06-02"), *resources)
    return rec, assess(rec, AS_OF, Guideline.ELN2020).therapy


def test_a_prescription_renewed_every_three_months_is_one_course() -> None:
    renewals = [
        order("r1", "2024-01-10"),
        order("r2", "2024-04-05"),
        order("r3", "2024-07-08"),
        order("r4", "2024-10-01"),
        order("r5", "2025-01-02"),
        order("r6", "2025-04-01", status="active"),
    ]
    rec, therapy = therapy_of(*renewals)
    assert len(rec.tki) == 1
    [course] = rec.tki
    assert (course.start, course.end, course.ref) == (
        date(2024, 1, 10),
        None,
        "MedicationRequest/r6",
    )
    assert therapy.status is TherapyStatus.ACTIVE
    assert therapy.start == date(2024, 1, 10)
    assert therapy.gaps == ()
    assert any("6 imatinib MedicationRequests" in i.message for i in rec.issues)


def test_a_dose_change_is_a_new_segment() -> None:
    _, therapy = therapy_of(
        order("r1", "2024-01-10"),
        order("r2", "2024-04-05"),
        order("r3", "2024-07-01", 600, status="active"),
    )
    assert [s.daily_dose_mg for s in therapy.segments] == [400, 600]
    assert therapy.segments[0].end == date(2024, 7, 1)
    assert therapy.last_dose_change == date(2024, 7, 1)
    assert therapy.daily_dose_mg == 600
    assert therapy.gaps == ()


def test_a_gap_longer_than_the_limit_is_an_interruption() -> None:
    # The first supply runs out on 2024-04-09; the next order comes more than 30 days later.
    later = date(2024, 4, 9).toordinal() + MAX_SUPPLY_GAP_DAYS + 5
    restart = date.fromordinal(later).isoformat()
    rec, therapy = therapy_of(order("r1", "2024-01-10"), order("r2", restart, status="active"))
    assert len(rec.tki) == 2
    assert [(g.start, g.end) for g in therapy.gaps] == [
        (date(2024, 4, 9), date.fromisoformat(restart))
    ]
    assert therapy.start == date(2024, 1, 10)
    # Within the limit it is one course.
    near = date.fromordinal(date(2024, 4, 9).toordinal() + MAX_SUPPLY_GAP_DAYS).isoformat()
    rec, therapy = therapy_of(order("r1", "2024-01-10"), order("r2", near, status="active"))
    assert len(rec.tki) == 1
    assert therapy.gaps == ()


def test_bounds_period_gives_start_and_end() -> None:
    bounded = order(
        "r1",
        "2023-12-20",
        status="stopped",
        days=None,
        statusReason={"text": "Stopped for treatment-free remission"},
    )
    bounded["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"] = {
        "start": "2018-03-01",
        "end": "2025-01-13",
    }
    rec, therapy = therapy_of(bounded)
    assert (rec.tki[0].start, rec.tki[0].end) == (date(2018, 3, 1), date(2025, 1, 13))
    assert therapy.status is TherapyStatus.TFR


def test_statements_take_precedence_and_orders_are_not_counted_twice() -> None:
    taken = statement(imatinib(), mid="st", start="2022-01-10")
    rec, therapy = therapy_of(taken, order("r1", "2024-01-10"), order("r2", "2024-04-05"))
    assert [s.ref for s in rec.tki] == ["MedicationStatement/st"]
    assert therapy.start == date(2022, 1, 10)
    summary = next(i for i in rec.issues if i.code is IssueCode.UNKNOWN_CODE)
    assert "MedicationRequests for a TKI course another record already describes (2)" in (
        summary.message
    )


def test_orders_before_the_first_statement_add_to_the_course() -> None:
    taken = statement(imatinib(), mid="st", start="2024-01-10")
    rec, therapy = therapy_of(order("early", "2023-06-01", status="completed"), taken)
    assert therapy.start == date(2023, 6, 1)
    assert [s.ref for s in sorted(rec.tki, key=lambda s: s.start)] == [
        "MedicationRequest/early",
        "MedicationStatement/st",
    ]


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"status": "cancelled"}, "status 'cancelled'"),
        ({"status": "entered-in-error"}, "status 'entered-in-error'"),
        ({"status": "draft"}, "status 'draft'"),
        ({"intent": "proposal"}, "intent 'proposal'"),
        ({"doNotPerform": True}, "doNotPerform"),
    ],
)
def test_orders_that_are_not_intake_are_left_out_and_said_so(
    changes: dict[str, Any], why: str
) -> None:
    rec = record(order("r1", "2024-01-10", **changes))
    assert rec.tki == ()
    assert any(why in i.message and i.code is IssueCode.STATUS_IGNORED for i in rec.issues)


@pytest.mark.parametrize(
    ("as_of", "flagged"),
    [
        # a 90-day supply from 2025-01-10 runs out on 2025-04-10
        (date(2025, 4, 10), False),
        (date(2025, 5, 10), False),  # exactly the limit after the supply ran out
        (date(2025, 5, 11), True),  # one day more
        (date(2026, 1, 10), True),
    ],
)
def test_an_active_order_whose_supply_lapsed_long_before_as_of_is_flagged(
    as_of: date, flagged: bool
) -> None:
    """Relative to the as-of date, never to the day the data is read."""
    rec = record(order("r1", "2025-01-10", status="active"))
    assert rec.tki[0].status is MedicationStatus.ACTIVE
    assert rec.tki[0].supplied_to == date(2025, 4, 10)
    assert not any("supply ran out" in issue_message(i) for i in rec.issues)
    assessment = assess(rec, as_of, Guideline.ELN2020)
    assert assessment.therapy.status is TherapyStatus.ACTIVE
    lapsed = [i for i in assessment.issues if "supply ran out on 2025-04-10" in issue_message(i)]
    assert bool(lapsed) is flagged


def test_dispenses_make_a_course_where_there_are_no_orders() -> None:
    def dispense(did: str, day: str) -> dict[str, Any]:
        return {
            "resourceType": "MedicationDispense",
            "id": did,
            "status": "completed",
            "subject": {"reference": PATIENT},
            "medicationCodeableConcept": concept(c.RXNORM, "475342"),
            "whenHandedOver": day,
            "daysSupply": {"value": 30, "unit": "d", "system": c.UCUM, "code": "d"},
            "dosageInstruction": [
                {"timing": once_daily(), "doseAndRate": [{"doseQuantity": qty(100, "mg")}]}
            ],
        }

    rec, therapy = therapy_of(
        dispense("d1", "2025-03-01"), dispense("d2", "2025-03-30"), dispense("d3", "2025-05-01")
    )
    assert len(rec.tki) == 1
    assert therapy.drug is Tki.DASATINIB
    assert therapy.daily_dose_mg == 100
    assert therapy.status is TherapyStatus.STOPPED  # the last supply ran out on 2025-05-31
    assert rec.tki[0].end == date(2025, 5, 31)


def test_administrations_on_one_day_add_up() -> None:
    def given(aid: str, when: str) -> dict[str, Any]:
        return {
            "resourceType": "MedicationAdministration",
            "id": aid,
            "status": "completed",
            "subject": {"reference": PATIENT},
            "medicationCodeableConcept": concept(c.RXNORM, "282388"),
            "effectiveDateTime": when,
            "dosage": {"dose": {"value": 400, "unit": "mg", "system": c.UCUM, "code": "mg"}},
        }

    rec = record(given("a1", "2025-06-01T08:00:00Z"), given("a2", "2025-06-01T20:00:00Z"))
    assert [s.daily_dose_mg for s in rec.tki] == [800]


def test_a_strong_cyp3a4_inhibitor_ordered_by_rxnorm_alone() -> None:
    clari = order(
        "clari",
        "2025-06-20",
        500,
        status="active",
        days=14,
        medication=concept(c.RXNORM, "21212"),
    )
    rec = record(statement(imatinib()), clari)
    [other] = rec.other_medications
    assert other.name == "clarithromycin"
    assert other.end == date(2025, 7, 4)
    assert IssueCode.UNKNOWN_CODE not in codes(rec.issues)


@pytest.mark.parametrize(
    ("code", "drug"),
    [
        ("282388", Tki.IMATINIB),
        ("403879", Tki.IMATINIB),
        ("475342", Tki.DASATINIB),
        ("662281", Tki.NILOTINIB),
        ("1307619", Tki.BOSUTINIB),
        ("1364347", Tki.PONATINIB),
        ("2584304", Tki.ASCIMINIB),
    ],
)
def test_every_tki_by_rxnorm_alone(code: str, drug: Tki) -> None:
    rec = record(order("r1", "2025-01-10", status="active", medication=concept(c.RXNORM, code)))
    assert rec.tki[0].drug is drug
