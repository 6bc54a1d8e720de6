"""SMART Backend Services: the assertion, token caching and renewal, discovery, key loading."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs

import pytest
import requests
import responses
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey

from fhir_cml.ehr.auth import (
    ASSERTION_LIFETIME,
    DEFAULT_SCOPE,
    SmartBackendAuth,
    SmartConfiguration,
    discover,
    load_signing_key,
)
from fhir_cml.ehr.client import FhirClient, RetryPolicy
from fhir_cml.errors import ConfigurationError, TokenError

BASE = "https://ehr.example.org/fhir"
TOKEN_URL = "https://auth.example.org/token"


@pytest.fixture(scope="module")
def rsa_key() -> RSAKey:
    return RSAKey.generate_key(2048)


@pytest.fixture(scope="module")
def ec_key() -> ECKey:
    return ECKey.generate_key("P-384")


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def pem_file(tmp_path: Path, key: RSAKey | ECKey, name: str = "key.pem") -> Path:
    path = tmp_path / name
    path.write_bytes(key.as_pem(private=True))
    return path


def token_reply(token: str = "tok-1", expires_in: int = 300) -> dict[str, object]:
    return {"access_token": token, "token_type": "bearer", "expires_in": expires_in}


def form(call: responses.Call) -> dict[str, str]:
    body = call.request.body
    text = body.decode() if isinstance(body, bytes) else str(body)
    return {k: v[0] for k, v in parse_qs(text).items()}


# --- the assertion -------------------------------------------------------------------------------


def test_the_token_request_carries_a_signed_smart_assertion(
    tmp_path: Path, rsa_key: RSAKey, mocked: responses.RequestsMock
) -> None:
    mocked.post(TOKEN_URL, json=token_reply())
    key = load_signing_key(pem_file(tmp_path, rsa_key), kid="key-1")
    auth = SmartBackendAuth("client-9", key, TOKEN_URL)
    assert auth.token() == "tok-1"

    sent = form(mocked.calls[0])
    assert sent["grant_type"] == "client_credentials"
    assert sent["scope"] == DEFAULT_SCOPE
    assert sent["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    public = RSAKey.import_key(rsa_key.as_dict(private=False))
    token = jwt.decode(sent["client_assertion"], public, algorithms=["RS384"])
    assert token.header["alg"] == "RS384"
    assert token.header["kid"] == "key-1"
    assert token.header["typ"] == "JWT"
    claims = token.claims
    assert claims["iss"] == claims["sub"] == "client-9"
    assert claims["aud"] == TOKEN_URL
    assert 0 < claims["exp"] - time.time() <= ASSERTION_LIFETIME
    assert len(claims["jti"]) >= 16


def test_ec_keys_sign_es384_and_every_assertion_has_its_own_jti(
    tmp_path: Path, ec_key: ECKey, mocked: responses.RequestsMock
) -> None:
    mocked.post(TOKEN_URL, json=token_reply(expires_in=10))
    key = load_signing_key(pem_file(tmp_path, ec_key))
    assert key.alg == "ES384"
    assert key.kid == ec_key.thumbprint()
    auth = SmartBackendAuth("c", key, TOKEN_URL, leeway=60)
    auth.token()
    auth.token()  # 10 s validity, 60 s leeway: renewed at once
    public = ECKey.import_key(ec_key.as_dict(private=False))
    jtis = [
        jwt.decode(form(call)["client_assertion"], public, algorithms=["ES384"]).claims["jti"]
        for call in mocked.calls
    ]
    assert len(jtis) == 2
    assert jtis[0] != jtis[1]


# --- caching and renewal -------------------------------------------------------------------------


def test_the_token_is_cached_until_shortly_before_it_expires(
    tmp_path: Path, rsa_key: RSAKey, mocked: responses.RequestsMock
) -> None:
    mocked.post(TOKEN_URL, json=token_reply("a", expires_in=3600))
    auth = SmartBackendAuth("c", load_signing_key(pem_file(tmp_path, rsa_key)), TOKEN_URL)
    assert [auth.token() for _ in range(5)] == ["a"] * 5
    assert auth.fetched == 1


def test_renew_fetches_a_new_token(
    tmp_path: Path, rsa_key: RSAKey, mocked: responses.RequestsMock
) -> None:
    mocked.post(TOKEN_URL, json=token_reply("a", expires_in=3600))
    mocked.post(TOKEN_URL, json=token_reply("b", expires_in=3600))
    auth = SmartBackendAuth("c", load_signing_key(pem_file(tmp_path, rsa_key)), TOKEN_URL)
    assert auth.token() == "a"
    auth.renew()
    assert auth.token() == "b"


def test_the_fhir_client_renews_on_401(
    tmp_path: Path, rsa_key: RSAKey, mocked: responses.RequestsMock
) -> None:
    mocked.post(TOKEN_URL, json=token_reply("revoked", expires_in=3600))
    mocked.post(TOKEN_URL, json=token_reply("fresh", expires_in=3600))
    mocked.get(
        f"{BASE}/Patient/1",
        status=401,
        match=[responses.matchers.header_matcher({"Authorization": "Bearer revoked"})],
    )
    mocked.get(
        f"{BASE}/Patient/1",
        json={"resourceType": "Patient", "id": "1"},
        match=[responses.matchers.header_matcher({"Authorization": "Bearer fresh"})],
    )
    auth = SmartBackendAuth("c", load_signing_key(pem_file(tmp_path, rsa_key)), TOKEN_URL)
    with FhirClient(BASE, auth=auth) as client:
        assert client.read("Patient", "1")["id"] == "1"
    assert auth.fetched == 2


def test_a_refusal_from_the_token_endpoint_is_a_token_error(
    tmp_path: Path, rsa_key: RSAKey, mocked: responses.RequestsMock
) -> None:
    mocked.post(
        TOKEN_URL,
        status=400,
        json={"error": "invalid_client", "error_description": "unknown key"},
    )
    auth = SmartBackendAuth("c", load_signing_key(pem_file(tmp_path, rsa_key)), TOKEN_URL)
    with pytest.raises(TokenError, match="invalid_client: unknown key") as caught:
        auth.token()
    assert caught.value.status == 401
    assert len(mocked.calls) == 1  # a refusal is not retried


def test_an_unreachable_token_endpoint_is_retried_then_reported(
    tmp_path: Path, rsa_key: RSAKey, mocked: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("fhir_cml.ehr.auth.time.sleep", lambda _s: None)
    for _ in range(3):
        mocked.post(TOKEN_URL, body=requests.ConnectionError("refused"))
    auth = SmartBackendAuth("c", load_signing_key(pem_file(tmp_path, rsa_key)), TOKEN_URL)
    with pytest.raises(TokenError, match="after 3 attempts"):
        auth.token()
    assert len(mocked.calls) == 3


def test_a_token_response_without_access_token_is_refused(
    tmp_path: Path, rsa_key: RSAKey, mocked: responses.RequestsMock
) -> None:
    mocked.post(TOKEN_URL, json={"token_type": "bearer", "expires_in": 300})
    auth = SmartBackendAuth("c", load_signing_key(pem_file(tmp_path, rsa_key)), TOKEN_URL)
    with pytest.raises(TokenError, match="no access_token"):
        auth.token()


# --- discovery -----------------------------------------------------------------------------------


def test_discovery_reads_the_smart_configuration(mocked: responses.RequestsMock) -> None:
    mocked.get(
        f"{BASE}/.well-known/smart-configuration",
        json={
            "token_endpoint": TOKEN_URL,
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        },
    )
    with FhirClient(BASE) as client:
        config = discover(client)
    assert config.token_endpoint == TOKEN_URL
    config.check("ES384")
    with pytest.raises(ConfigurationError, match="does not accept RS256"):
        config.check("RS256")


def test_a_server_without_private_key_jwt_is_refused_at_start() -> None:
    config = SmartConfiguration(TOKEN_URL, auth_methods=("client_secret_basic",))
    with pytest.raises(ConfigurationError, match="private_key_jwt"):
        config.check("RS384")


def test_discovery_falls_back_to_the_capability_statement(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/.well-known/smart-configuration", status=404)
    mocked.get(
        f"{BASE}/metadata",
        json={
            "resourceType": "CapabilityStatement",
            "rest": [
                {
                    "security": {
                        "extension": [
                            {
                                "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                                "extension": [{"url": "token", "valueUri": TOKEN_URL}],
                            }
                        ]
                    }
                }
            ],
        },
    )
    with FhirClient(BASE, retry=RetryPolicy(attempts=0)) as client:
        assert discover(client).token_endpoint == TOKEN_URL


def test_no_token_endpoint_anywhere_is_a_configuration_error(
    mocked: responses.RequestsMock,
) -> None:
    mocked.get(f"{BASE}/.well-known/smart-configuration", status=404)
    mocked.get(f"{BASE}/metadata", json={"resourceType": "CapabilityStatement", "rest": []})
    with (
        FhirClient(BASE, retry=RetryPolicy(attempts=0)) as client,
        pytest.raises(ConfigurationError, match="--token-url"),
    ):
        discover(client)


# --- keys ----------------------------------------------------------------------------------------


def test_a_private_jwks_entry_is_chosen_by_kid(tmp_path: Path, rsa_key: RSAKey) -> None:
    other = RSAKey.generate_key(2048, parameters={"kid": "old"})
    mine = RSAKey.import_key(rsa_key.as_dict(private=True), parameters={"kid": "new"})
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(KeySet([other, mine]).as_dict(private=True)))
    key = load_signing_key(path, kid="new")
    assert key.kid == "new"
    assert key.key.thumbprint() == rsa_key.thumbprint()


def test_a_public_key_is_refused(tmp_path: Path, rsa_key: RSAKey) -> None:
    path = tmp_path / "public.pem"
    path.write_bytes(rsa_key.as_pem(private=False))
    with pytest.raises(ConfigurationError, match="public key"):
        load_signing_key(path)


def test_a_file_that_is_no_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "nonsense.pem"
    path.write_text("hello")
    with pytest.raises(ConfigurationError, match="not a private key"):
        load_signing_key(path)


def test_an_algorithm_must_fit_the_key(tmp_path: Path, ec_key: ECKey) -> None:
    with pytest.raises(ConfigurationError, match="cannot sign RS384"):
        load_signing_key(pem_file(tmp_path, ec_key), alg="RS384")
