"""Superseding is a state machine: any sequence of readings, written through the one write path
against the test server - some steps on a server that fails entries, runs transactions as
batches or answers without a body, some steps killed part-way - ends every completed write with
exactly one current suggestion, and it is the latest reading's.

Readings of one patient: A (the data as seeded), B (a new result), A under ELN 2013 (another
guideline), A under a newer ruleset; so sequences hold A -> B -> A, guidelines back and forth,
an upgrade and back.
"""

from __future__ import annotations

import contextlib
import dataclasses
from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fhir_cml.app import WriteSettings, write_back
from fhir_cml.domain import Assessment, Guideline, assess
from fhir_cml.ehr.client import FhirClient
from fhir_cml.fhir.inbound import MappingOptions, records_from_resources
from fhir_cml.fhir.outbound import fingerprint
from tests.support.fhir_server import FhirTestServer
from tests.support.sync_data import AS_OF, CML_PATIENTS, pcr
from tests.support.sync_helpers import current_suggestions

pytestmark = pytest.mark.integration

NOW = datetime(2025, 6, 30, 12, tzinfo=UTC)
PATIENT = "Patient/opt"


def reading(name: str) -> Assessment:
    extra = [pcr("opt", date(2025, 6, 26), 0.5)] if name == "B" else []
    loaded = records_from_resources([*CML_PATIENTS["opt"], *extra], MappingOptions(now=NOW))
    [record] = loaded.records
    guideline = Guideline.ELN2013 if name == "A-eln2013" else Guideline.ELN2020
    assessment = assess(record, AS_OF, guideline)
    if name == "A-rules-next":
        assessment = dataclasses.replace(assessment, ruleset_version="99.0.0")
    return assessment


READINGS = {name: reading(name) for name in ("A", "B", "A-eln2013", "A-rules-next")}
# Server behaviours a step may meet, and the write mode it is sent with.
SERVERS: dict[str, tuple[dict[str, Any], str]] = {
    "as-is": ({}, "batch"),
    "empty-bodies": ({"empty_minimal_bundles": True}, "batch"),
    "failing-entries": ({"entry_failures": "2"}, "batch"),
    "transactions-as-batches": (
        {"transactions_as_batches": True, "entry_failures": "3"},
        "transaction",
    ),
}
OFF = {"empty_minimal_bundles": False, "transactions_as_batches": False, "entry_failures": None}

step = st.tuples(
    st.sampled_from(sorted(READINGS)),
    st.sampled_from(sorted(SERVERS)),
    st.one_of(st.none(), st.integers(min_value=1, max_value=3)),  # killed after n requests
)


class Killed(Exception):
    """The write stopped with a request sent and its answer unread (the process was killed)."""


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(step, min_size=1, max_size=6))
def test_any_sequence_ends_each_write_with_the_latest_reading_current(
    fhir_server: FhirTestServer,
    monkeypatch: pytest.MonkeyPatch,
    steps: list[tuple[str, str, int | None]],
) -> None:
    fhir_server.reset()
    for name, server, kill_after in steps:
        client = FhirClient(fhir_server.base_url)  # each step a run of its own
        behaviours, mode = SERVERS[server]
        fhir_server.behave(**{**OFF, **behaviours})
        settings_ = WriteSettings(mode=mode)  # type: ignore[arg-type]
        assessment = READINGS[name]
        if kill_after is not None:
            with monkeypatch.context() as m:
                m.setattr(FhirClient, "send_bundle", killing_after(kill_after))
                with contextlib.suppress(Killed):
                    write_back(client, assessment, NOW, settings=settings_)
        outcome = write_back(client, assessment, NOW, settings=settings_)
        if not outcome.ok:  # failed on this server: the next run (here, a plain one) repairs
            fhir_server.behave(**OFF)
            outcome = write_back(client, assessment, NOW, settings=settings_)
        client.close()
        assert outcome.ok, outcome.error
        assert current_suggestions(fhir_server.base_url, [PATIENT]) == {
            PATIENT: fingerprint(assessment)
        }


def killing_after(n: int) -> Any:
    real = FhirClient.send_bundle
    sent = {"n": 0}

    def send_bundle(self: FhirClient, bundle: dict[str, Any]) -> Any:
        answer = real(self, bundle)
        sent["n"] += 1
        if sent["n"] >= n:
            raise Killed
        return answer

    return send_bundle


def test_the_readings_are_four_different_assessments() -> None:
    assert len({fingerprint(a) for a in READINGS.values()}) == len(READINGS)
