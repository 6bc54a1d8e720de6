"""The OAuth client parts on their own: scopes, discovery, what a token response must hold, the
id_token checks and private_key_jwt client authentication (the token endpoint mocked)."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import responses
from joserfc import jwt
from joserfc.jwk import RSAKey

from fhir_cml.ehr.auth import load_signing_key
from fhir_cml.errors import ConfigurationError
from fhir_cml.web.settings import Settings, load_settings
from fhir_cml.web.smart.errors import SmartError
from fhir_cml.web.smart.oauth import TokenEndpoint, discover, requested_scope

ISS = "https://ehr.example.org/fhir"
TOKEN_URL = "https://ehr.example.org/oauth/token"
NOW = datetime(2025, 6, 30, 8, 0, tzinfo=UTC)


def settings(**values: Any) -> Settings:
    return load_settings(
        {
            "public_base_url": "https://cml.example.org",
            "smart_issuers": ISS,
            "smart_client_id": "app",
            **values,
        }
    )


def unsigned(claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256'})}.{part(claims)}.c2ln"


def test_scopes_for_an_ehr_and_a_standalone_launch() -> None:
    s = settings()
    ehr = requested_scope(s, standalone=False).split()
    alone = requested_scope(s, standalone=True).split()
    assert ehr[0] == "launch"
    assert alone[0] == "launch/patient"
    assert ehr[1:] == alone[1:]
    # SMART v2 online_access by default: a refresh token while the user is signed in.
    assert ehr[-1] == "online_access"
    assert "offline_access" not in ehr
    offline = requested_scope(settings(smart_offline_access=True), standalone=False).split()
    assert "offline_access" in offline
    assert "online_access" not in offline
    neither = requested_scope(settings(smart_online_access=False), standalone=False).split()
    assert not {"online_access", "offline_access"} & set(neither)


def test_a_configured_scope_keeps_the_launch_scope_right() -> None:
    s = settings(smart_scope="launch/patient patient/*.rs openid")
    assert requested_scope(s, standalone=False) == "launch patient/*.rs openid online_access"
    assert requested_scope(s, standalone=True) == "launch/patient patient/*.rs openid online_access"
    s = settings(smart_scope="launch patient/*.rs offline_access")
    assert requested_scope(s, standalone=False) == "launch patient/*.rs offline_access"


@responses.activate
def test_discovery_reads_the_endpoints() -> None:
    responses.get(
        f"{ISS}/.well-known/smart-configuration",
        json={
            "authorization_endpoint": "https://ehr.example.org/oauth/authorize",
            "token_endpoint": TOKEN_URL,
            "issuer": "https://ehr.example.org",
            "code_challenge_methods_supported": ["S256"],
            "capabilities": ["launch-ehr", "permission-v2"],
        },
    )
    config = discover(ISS, settings())
    assert config.authorization_endpoint == "https://ehr.example.org/oauth/authorize"
    assert config.token_endpoint == TOKEN_URL
    assert config.issuer == "https://ehr.example.org"
    assert "permission-v2" in config.capabilities


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"token_endpoint": TOKEN_URL}, "no usable authorization_endpoint"),
        (
            {"authorization_endpoint": "https://a/x", "token_endpoint": "not a url"},
            "no usable token_endpoint",
        ),
        (
            {
                "authorization_endpoint": "https://a/x",
                "token_endpoint": TOKEN_URL,
                "code_challenge_methods_supported": ["plain"],
            },
            "but not S256",
        ),
    ],
)
@responses.activate
def test_discovery_refuses_what_the_app_cannot_use(body: dict[str, Any], says: str) -> None:
    responses.get(f"{ISS}/.well-known/smart-configuration", json=body)
    with pytest.raises(SmartError) as refused:
        discover(ISS, settings())
    assert refused.value.status == 502
    assert says in refused.value.message


@responses.activate
def test_a_token_response_gives_the_launch_context() -> None:
    responses.post(
        TOKEN_URL,
        json={
            "access_token": "at",
            "token_type": "bearer",
            "expires_in": 600,
            "refresh_token": "rt",
            "scope": "launch patient/Observation.rs",
            "patient": "p-1",
            "appContext": json.dumps({"asOf": "2025-03-01"}),
            "id_token": unsigned(
                {"aud": "app", "exp": NOW.timestamp() + 300, "fhirUser": "Practitioner/9"}
            ),
        },
    )
    tokens = TokenEndpoint(settings(), None).exchange(
        TOKEN_URL, code="c", code_verifier="v" * 43, now=NOW
    )
    assert tokens.access_token == "at"
    assert tokens.refresh_token == "rt"
    assert tokens.patient == "p-1"
    assert tokens.fhir_user == "Practitioner/9"
    assert tokens.as_of == date(2025, 3, 1)
    assert tokens.expires_at is not None
    assert (tokens.expires_at - NOW).total_seconds() == 600
    sent = dict(x.split("=") for x in str(responses.calls[0].request.body).split("&"))
    assert sent["code_verifier"] == "v" * 43
    assert sent["client_id"] == "app"  # a public client names itself
    assert sent["redirect_uri"] == "https%3A%2F%2Fcml.example.org%2Fsmart%2Fcallback"


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"token_type": "bearer"}, 502, "no access_token"),
        ({"access_token": "a", "token_type": "mac"}, 502, "not Bearer"),
        ({"access_token": "a", "token_type": "Bearer", "patient": "a/b"}, 502, "not a FHIR id"),
        ({"access_token": "a", "token_type": "Bearer", "id_token": "x.y"}, 502, "id_token"),
        (
            {
                "access_token": "a",
                "token_type": "Bearer",
                "id_token": unsigned({"aud": "other", "exp": NOW.timestamp() + 60}),
            },
            403,
            "meant for another client",
        ),
        (
            {
                "access_token": "a",
                "token_type": "Bearer",
                "id_token": unsigned({"aud": ["app"], "exp": NOW.timestamp() - 3600}),
            },
            403,
            "has expired",
        ),
        (
            {
                "access_token": "a",
                "token_type": "Bearer",
                "id_token": unsigned(
                    {"aud": "app", "exp": NOW.timestamp() + 60, "iss": "https://evil"}
                ),
            },
            403,
            "issued by another server",
        ),
        ({"error": "invalid_grant", "error_description": "Code expired"}, 403, "Code expired"),
    ],
)
@responses.activate
def test_a_token_response_the_app_cannot_use(body: dict[str, Any], status: int, says: str) -> None:
    responses.post(TOKEN_URL, json=body, status=400 if "error" in body else 200)
    with pytest.raises(SmartError) as refused:
        TokenEndpoint(settings(), None).exchange(
            TOKEN_URL, code="c", code_verifier="v" * 43, now=NOW, issuer="https://ehr.example.org"
        )
    assert refused.value.status == status
    assert says in refused.value.message


@responses.activate
def test_a_failing_token_endpoint_is_a_502() -> None:
    responses.post(TOKEN_URL, body="<html>proxy error</html>", status=503)
    with pytest.raises(SmartError) as refused:
        TokenEndpoint(settings(), None).exchange(TOKEN_URL, code="c", code_verifier=None, now=NOW)
    assert refused.value.status == 502


@responses.activate
def test_a_refresh_keeps_the_refresh_token_when_no_new_one_comes() -> None:
    responses.post(TOKEN_URL, json={"access_token": "new", "token_type": "Bearer"})
    tokens = TokenEndpoint(settings(), None).refresh(TOKEN_URL, refresh_token="rt", now=NOW)
    assert tokens.access_token == "new"
    assert tokens.refresh_token == "rt"
    assert tokens.expires_at is None


@responses.activate
def test_private_key_jwt_client_authentication(tmp_path: Path) -> None:
    key = RSAKey.generate_key(2048)
    path = tmp_path / "app.pem"
    path.write_bytes(key.as_pem(private=True))
    s = settings(smart_private_key=str(path), smart_key_id="k1")
    responses.post(TOKEN_URL, json={"access_token": "at", "token_type": "Bearer"})
    TokenEndpoint(s, load_signing_key(path, kid="k1")).exchange(
        TOKEN_URL, code="c", code_verifier="v" * 43, now=NOW
    )
    sent = dict(pair.split("=", 1) for pair in str(responses.calls[0].request.body).split("&"))
    assert sent["client_assertion_type"] == (
        "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
    )
    assertion = jwt.decode(
        sent["client_assertion"],
        RSAKey.import_key(key.as_dict(private=False)),
        algorithms=["RS384"],
    )
    assert assertion.header["kid"] == "k1"
    assert assertion.header["alg"] == "RS384"
    claims = assertion.claims
    assert claims["iss"] == claims["sub"] == "app"
    assert claims["aud"] == TOKEN_URL
    assert 0 < claims["exp"] - time.time() <= 300


def test_settings_for_the_app_are_checked() -> None:
    with pytest.raises(ConfigurationError, match="FHIR_CML_SMART_CLIENT_ID"):
        load_settings({"public_base_url": "https://cml.example.org", "smart_issuers": ISS})
    with pytest.raises(ConfigurationError, match="either FHIR_CML_SMART_CLIENT_SECRET"):
        settings(smart_client_secret="s", smart_private_key="/k.pem")
    with pytest.raises(ConfigurationError, match="FHIR_CML_SMART_ISSUERS"):
        settings(smart_issuers="ehr.example.org/fhir")
    with pytest.raises(ConfigurationError, match="FHIR_CML_SMART_SESSION_IDLE_MINUTES"):
        settings(smart_session_idle_minutes=0)
    two = settings(smart_issuers=f"{ISS}/, https://other.example.org/fhir")
    assert two.smart_issuers == (ISS, "https://other.example.org/fhir")
    assert two.smart_callback_url == "https://cml.example.org/smart/callback"


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FHIR_CML_PUBLIC_BASE_URL", "https://cml.example.org")
    monkeypatch.setenv("FHIR_CML_SMART_ISSUERS", f'["{ISS}"]')
    monkeypatch.setenv("FHIR_CML_SMART_CLIENT_ID", "app")
    monkeypatch.setenv("FHIR_CML_SMART_AS_OF", "2025-06-30")
    monkeypatch.setenv("FHIR_CML_DEMO", "true")
    s = load_settings()
    assert s.smart_issuers == (ISS,)
    assert s.smart_as_of == date(2025, 6, 30)
    assert s.demo is True
