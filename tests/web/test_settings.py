"""Settings: environment, file and overrides, checked at start-up with the variable named."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask

from fhir_cml import create_app
from fhir_cml.errors import ConfigurationError
from fhir_cml.web.assessment import rule_config
from fhir_cml.web.settings import load_settings

from .conftest import PUBLIC


def test_the_public_base_url_is_required() -> None:
    with pytest.raises(ConfigurationError, match="FHIR_CML_PUBLIC_BASE_URL: Field required"):
        create_app()


def test_environment_variables_carry_the_prefix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FHIR_CML_PUBLIC_BASE_URL", "https://cml.example.org/base/")
    monkeypatch.setenv("FHIR_CML_MAX_CONTENT_LENGTH", "1234")
    monkeypatch.setenv("FHIR_CML_CDS_ALGORITHMS", "RS384, ES256")
    monkeypatch.setenv(
        "FHIR_CML_CDS_ISSUERS", json.dumps([{"iss": "https://ehr", "jwks_url": "https://ehr/k"}])
    )
    settings = load_settings({"state": str(tmp_path / "s.db")})
    assert settings.public_base_url == "https://cml.example.org/base"
    assert settings.cds_base == "https://cml.example.org/base/cds-services"
    assert settings.max_content_length == 1234
    assert settings.cds_algorithms == ("RS384", "ES256")
    assert settings.cds_issuers[0].jwks_url == "https://ehr/k"


def test_a_toml_file_named_by_fhir_cml_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "fhir-cml.toml"
    path.write_text(
        'public_base_url = "https://from-file.example.org"\n'
        'guideline = "eln2013"\n'
        "[[cds_issuers]]\n"
        'iss = "https://ehr.example.org"\n'
        'jwks_url = "https://ehr.example.org/jwks"\n'
        'jku = ["https://ehr.example.org/other-jwks"]\n'
    )
    monkeypatch.setenv("FHIR_CML_CONFIG", str(path))
    monkeypatch.setenv("FHIR_CML_GUIDELINE", "eln2009")  # the environment wins over the file
    settings = load_settings()
    assert settings.public_base_url == "https://from-file.example.org"
    assert settings.guideline.value == "eln2009"
    issuer = settings.issuer("https://ehr.example.org")
    assert issuer is not None
    assert issuer.allowed_jku("https://ehr.example.org/other-jwks")
    assert not issuer.allowed_jku("https://attacker.example.org/jwks")


def test_a_json_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"public_base_url": "https://json.example.org"}))
    monkeypatch.setenv("FHIR_CML_CONFIG", str(path))
    assert load_settings().public_base_url == "https://json.example.org"


def test_a_missing_config_file_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FHIR_CML_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigurationError, match="FHIR_CML_CONFIG: no such file"):
        load_settings()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"public_base_url": "ftp://x"}, "FHIR_CML_PUBLIC_BASE_URL: .*absolute http"),
        ({"public_base_url": "https://x/?a=1"}, "FHIR_CML_PUBLIC_BASE_URL: .*query"),
        ({"cds_algorithms": "HS256"}, "FHIR_CML_CDS_ALGORITHMS: not allowed: HS256"),
        ({"cds_algorithms": "none"}, "FHIR_CML_CDS_ALGORITHMS: not allowed: none"),
        ({"cds_algorithms": ""}, "FHIR_CML_CDS_ALGORITHMS: at least one"),
        ({"cds_issuers": [{"iss": "https://ehr"}]}, r"FHIR_CML_CDS_ISSUERS\[0\]: .*jwks_url"),
        (
            {"cds_issuers": [{"iss": "a", "jwks_url": "https://a/k", "extra": 1}]},
            r"FHIR_CML_CDS_ISSUERS\[0\]\.extra",
        ),
        ({"cds_issuers": "[{"}, "FHIR_CML_CDS_ISSUERS"),
        ({"max_content_length": 0}, "FHIR_CML_MAX_CONTENT_LENGTH"),
        ({"guideline": "eln1999"}, "FHIR_CML_GUIDELINE"),
        ({"fhir_base": "not a url"}, "FHIR_CML_FHIR_BASE"),
        ({"token": "t"}, "FHIR_CML_TOKEN is given but FHIR_CML_FHIR_BASE is not"),
        ({"fhir_base": "https://e", "client_id": "c"}, "needs both FHIR_CML_CLIENT_ID"),
        ({"smart_launch_path": "launch"}, "FHIR_CML_SMART_LAUNCH_PATH"),
        ({"log_level": "LOUD"}, "FHIR_CML_LOG_LEVEL"),
        ({"cds_cors_origins": "https://sandbox.example.org/app"}, "FHIR_CML_CDS_CORS_ORIGINS"),
        ({"cds_cors_origins": "sandbox.example.org"}, "FHIR_CML_CDS_CORS_ORIGINS"),
        ({"cds_deadline": 0}, "FHIR_CML_CDS_DEADLINE"),
        ({"api_algorithms": "HS256"}, "FHIR_CML_API_ALGORITHMS: not allowed: HS256"),
        ({"api_issuers": [{"iss": "https://a"}]}, r"FHIR_CML_API_ISSUERS\[0\]: .*jwks_url"),
        (
            {"api_introspection_url": "https://a/i", "api_introspection_client_id": "c"},
            "needs both FHIR_CML_API_INTROSPECTION_CLIENT_ID",
        ),
    ],
)
def test_wrong_settings_name_their_variable(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        load_settings({"public_base_url": PUBLIC, **overrides})


def test_cors_origins_from_a_comma_separated_list() -> None:
    settings = load_settings(
        {"public_base_url": PUBLIC, "cds_cors_origins": "https://Sandbox.example.org/, *"}
    )
    assert settings.cds_cors_origins == ("https://sandbox.example.org", "*")


def test_an_unreadable_private_key_fails_at_start(
    make_app: Callable[..., Flask], tmp_path: Path
) -> None:
    key = tmp_path / "key.pem"
    key.write_text("not a key")
    with pytest.raises(ConfigurationError, match="FHIR_CML_PRIVATE_KEY"):
        make_app(fhir_base="https://ehr.example.org/fhir", client_id="cml", private_key=str(key))


def test_the_app_takes_its_request_size_limit_from_the_settings(
    make_app: Callable[..., Flask],
) -> None:
    assert make_app(max_content_length=4096).config["MAX_CONTENT_LENGTH"] == 4096


def test_create_app_is_importable_from_the_package_without_flask_for_the_domain() -> None:
    import subprocess
    import sys

    code = (
        "import sys, fhir_cml; from fhir_cml.domain import assess; "
        "from fhir_cml.fhir.inbound import records_from_resources; "
        "assert 'flask' not in sys.modules, 'flask imported'; "
        "fhir_cml.create_app; assert 'flask' in sys.modules"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_sites_rule_settings_are_checked_at_start_up(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FHIR_CML_PUBLIC_BASE_URL", "https://cml.example.org")
    bad = tmp_path / "rules.json"
    bad.write_text('{"trough_target_ng_ml": "high"}')
    with pytest.raises(ConfigurationError, match=r"FHIR_CML_RULES_CONFIG.*trough_target_ng_ml"):
        load_settings({"state": str(tmp_path / "s.db"), "rules_config": str(bad)})
    good = tmp_path / "good.json"
    good.write_text('{"trough_target_ng_ml": 900}')
    settings = load_settings({"state": str(tmp_path / "s.db"), "rules_config": str(good)})
    assert rule_config(settings).trough_target_ng_ml == 900.0
