"""Talking to an EHR's FHIR server: the client, SMART Backend Services auth, fetching a
population and its inputs, Bulk Data export, and the idempotent write-back. All network I/O
of fhir-cml lives here; the pure mapping it relies on is in :mod:`fhir_cml.fhir`."""
