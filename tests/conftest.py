"""Suite-wide pytest configuration: shared fixtures are registered here."""

pytest_plugins = ["tests.support.fhir_server", "tests.support.postgres"]
