"""State kept between runs: SQLite by default, PostgreSQL when a database URL says so.

:class:`StateStore` opens it; :class:`Base` is the declarative base other faces extend with
their own tables.
"""

from fhir_cml.state.schema import Base, SyncPatient, SyncRun, SyncServer
from fhir_cml.state.store import (
    PatientState,
    PatientUpdate,
    RunRecord,
    StateStore,
    database_url,
    default_state_path,
)

__all__ = [
    "Base",
    "PatientState",
    "PatientUpdate",
    "RunRecord",
    "StateStore",
    "SyncPatient",
    "SyncRun",
    "SyncServer",
    "database_url",
    "default_state_path",
]
