"""The state store, on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import String, select, text
from sqlalchemy.orm import Mapped, mapped_column

from fhir_cml.errors import StateError, SyncAlreadyRunning
from fhir_cml.state import (
    Base,
    PatientUpdate,
    StateStore,
    database_url,
    default_state_path,
)

SERVER = "https://ehr.example.org/fhir"


class ReplayCacheExample(Base):
    """A table another face adds (the CDS service's JWT-jti replay cache has this shape)."""

    __tablename__ = "test_jti_cache"

    jti: Mapped[str] = mapped_column(String(128), primary_key=True)
    expires_at: Mapped[datetime]


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateStore]:
    if request.param == "sqlite":
        url = str(tmp_path / "state.sqlite3")
    else:
        url = request.getfixturevalue("postgres_url")
    store = StateStore(url)
    with store.engine.begin() as conn:  # every test starts from empty tables
        Base.metadata.drop_all(conn)
    store.create_all()
    yield store
    store.close()


def test_the_dialect_is_the_one_asked_for(store: StateStore) -> None:
    assert store.engine.dialect.name in ("sqlite", "postgresql")
    with store.engine.connect() as conn:
        assert conn.execute(text("select 1")).scalar() == 1


def test_a_successful_run_moves_the_high_water_mark(store: StateStore) -> None:
    assert store.high_water_mark(SERVER) is None
    mark = datetime(2025, 6, 30, 22, 0, tzinfo=UTC)
    run = store.begin_run(SERVER, mode="search", since=None, dry_run=False)
    store.finish_run(run, status="ok", counts={"assessed": 3}, high_water_mark=mark)
    assert store.high_water_mark(SERVER) == mark
    [record] = store.runs(SERVER)
    assert record.status == "ok"
    assert record.counts == {"assessed": 3}
    assert record.finished_at is not None


def test_failed_interrupted_and_dry_runs_leave_the_mark_alone(store: StateStore) -> None:
    first = datetime(2025, 6, 1, tzinfo=UTC)
    run = store.begin_run(SERVER, mode="search", since=None, dry_run=False)
    store.finish_run(run, status="ok", counts={}, high_water_mark=first)
    for status, dry in (("failed", False), ("interrupted", False), ("ok", True)):
        run = store.begin_run(SERVER, mode="search", since=first, dry_run=dry)
        store.finish_run(run, status=status, counts={}, high_water_mark=first + timedelta(days=1))
    assert store.high_water_mark(SERVER) == first
    assert [r.status for r in store.runs(SERVER)] == ["ok", "interrupted", "failed", "ok"]


def test_times_come_back_in_utc(store: StateStore) -> None:
    paris = timezone(timedelta(hours=2))
    run = store.begin_run(SERVER, mode="search", since=None, dry_run=False)
    store.finish_run(
        run, status="ok", counts={}, high_water_mark=datetime(2025, 7, 1, 12, 0, tzinfo=paris)
    )
    mark = store.high_water_mark(SERVER)
    assert mark == datetime(2025, 7, 1, 10, 0, tzinfo=UTC)
    assert mark is not None
    assert mark.tzinfo is not None


def test_patients_are_inserted_then_updated(store: StateStore) -> None:
    run = store.begin_run(SERVER, mode="search", since=None, dry_run=False)
    store.record_patients(
        SERVER,
        run,
        [
            PatientUpdate(
                "p1",
                "ok",
                input_fingerprint="i1",
                assessment_fingerprint="a1",
                risk_assessment="RiskAssessment/1",
                care_plan="CarePlan/1",
                assessed_as_of=date(2025, 6, 30),
                recheck_on=date(2025, 7, 30),
            ),
            PatientUpdate("p2", "skipped", reason="no CML evidence", input_fingerprint="i2"),
        ],
    )
    # A later failure keeps what was written before (None fields keep the stored value).
    store.record_patients(SERVER, run, [PatientUpdate("p1", "failed", reason="HTTP 503")])
    state = store.patients(SERVER)
    assert set(state) == {"p1", "p2"}
    assert state["p1"].status == "failed"
    assert state["p1"].reason == "HTTP 503"
    assert state["p1"].assessment_fingerprint == "a1"
    assert state["p1"].care_plan == "CarePlan/1"
    assert state["p1"].recheck_on == date(2025, 7, 30)
    assert state["p2"].reason == "no CML evidence"
    assert store.patients(SERVER, ["p2", "unknown"]).keys() == {"p2"}
    assert store.patients("https://other.example.org/fhir") == {}


def test_many_patients_in_one_go(store: StateStore) -> None:
    run = store.begin_run(SERVER, mode="search", since=None, dry_run=False)
    ids = [f"patient-{i:04d}" for i in range(1200)]  # more than one IN (...) chunk
    store.record_patients(SERVER, run, [PatientUpdate(i, "ok", input_fingerprint=i) for i in ids])
    store.record_patients(SERVER, run, [PatientUpdate(i, "ok", input_fingerprint="x") for i in ids])
    found = store.patients(SERVER, ids)
    assert len(found) == 1200
    assert {s.input_fingerprint for s in found.values()} == {"x"}


def test_runs_left_running_by_a_killed_process_are_marked_interrupted(
    store: StateStore,
) -> None:
    store.begin_run(SERVER, mode="search", since=None, dry_run=False)
    assert store.abandon_stale_runs(SERVER) == 1
    assert [r.status for r in store.runs(SERVER)] == ["interrupted"]


def test_other_faces_add_their_own_tables(store: StateStore) -> None:
    expires = datetime(2030, 1, 1, tzinfo=UTC)
    with store.session() as session:
        session.add(ReplayCacheExample(jti="abc", expires_at=expires))
    with store.session() as session:
        row = session.scalars(select(ReplayCacheExample)).one()
        assert row.expires_at == expires


def test_naive_times_are_refused(store: StateStore) -> None:
    run = store.begin_run(SERVER, mode="search", since=None, dry_run=False)
    with pytest.raises(StateError, match="naive datetime"):
        store.finish_run(run, status="ok", counts={}, high_water_mark=datetime(2025, 1, 1))


def test_a_newer_schema_is_refused(store: StateStore) -> None:
    with store.engine.begin() as conn:
        conn.execute(text("update state_meta set value = '99' where key = 'schema_version'"))
    with pytest.raises(StateError, match="newer fhir-cml"):
        store.create_all()


def test_an_unreachable_database_is_a_state_error(tmp_path: Path) -> None:
    store = StateStore("postgresql://nobody@127.0.0.1:1/none")
    with pytest.raises(StateError, match=r"cannot create the state tables \(postgresql"):
        store.create_all()


def test_state_urls() -> None:
    assert database_url("/var/lib/fhir-cml/state.db") == "sqlite:////var/lib/fhir-cml/state.db"
    assert database_url("postgresql://u:p@db/fhircml") == "postgresql+psycopg://u:p@db/fhircml"
    assert database_url("postgres://db/x") == "postgresql+psycopg://db/x"
    assert database_url("sqlite:///x.db") == "sqlite:///x.db"


def test_the_default_is_a_file_in_the_user_data_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("FHIR_CML_STATE", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_state_path() == tmp_path / "fhir-cml" / "state.sqlite3"
    assert database_url(None) == f"sqlite:///{tmp_path}/fhir-cml/state.sqlite3"
    store = StateStore()
    store.create_all()
    assert (tmp_path / "fhir-cml" / "state.sqlite3").exists()
    store.close()


def test_the_password_is_hidden_in_messages() -> None:
    store = StateStore("postgresql://user:s3cret@127.0.0.1:1/db")
    assert "s3cret" not in store.safe_url
    with pytest.raises(StateError) as caught:
        store.create_all()
    assert "s3cret" not in str(caught.value)


def _create_all_after(url: str, barrier: object) -> str:
    import fhir_cml.state.cds
    import fhir_cml.state.smart  # noqa: F401 - every table the service declares

    store = StateStore(url)
    barrier.wait()  # type: ignore[attr-defined]
    try:
        store.create_all()
    except StateError as err:
        return str(err)
    finally:
        store.close()
    return "ok"


def test_workers_starting_together_on_a_new_database_all_come_up(tmp_path: Path) -> None:
    """gunicorn's workers each open the store at boot; none may lose the table-creation race."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, context.Pool(4) as pool:
        for attempt in range(3):
            url = str(tmp_path / f"race-{attempt}.sqlite3")
            barrier = manager.Barrier(4)
            outcomes = pool.starmap(_create_all_after, [(url, barrier)] * 4)
            assert outcomes == ["ok"] * 4


def test_one_sync_of_a_server_at_a_time(store: StateStore) -> None:
    """A second store on the same database (another process's) cannot take a held run lock."""
    other = StateStore(store.url)
    try:
        with store.run_lock(SERVER):
            with (
                pytest.raises(SyncAlreadyRunning, match="another fhir-cml sync of"),
                other.run_lock(SERVER),
            ):
                pass
            with other.run_lock("https://other.example.org/fhir"):
                pass  # another server's sync may run alongside
        with other.run_lock(SERVER):
            pass  # released when the holder is done
    finally:
        other.close()


def test_a_killed_holder_leaves_no_lock_behind(store: StateStore, tmp_path: Path) -> None:
    """The lock is the operating system's or PostgreSQL's: a killed process releases it."""
    import subprocess
    import sys

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from fhir_cml.state import StateStore\n"
            "store = StateStore(sys.argv[1])\n"
            "with store.run_lock(sys.argv[2]):\n"
            "    print('locked', flush=True)\n"
            "    time.sleep(120)\n",
            store.url,
            SERVER,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(SyncAlreadyRunning), store.run_lock(SERVER):
            pass
    finally:
        holder.kill()
        holder.wait()
    # The holder's end reaches PostgreSQL's backend a moment after the process is gone (it reads
    # the closed socket when it is next scheduled): the lock must be free once it has.
    import time

    deadline = time.monotonic() + 30
    while True:
        try:
            with store.run_lock(SERVER):
                return
        except SyncAlreadyRunning:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
