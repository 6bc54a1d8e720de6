"""The EHR's JWT on CDS Hooks calls, verified as the CDS Hooks spec says; real keys made here."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import responses
from flask import Flask

from fhir_cml.errors import AuthenticationError
from fhir_cml.state import StateStore
from fhir_cml.state.cds import CdsState
from fhir_cml.web.cds.tokens import JwksCache, TokenPolicy, TokenVerifier
from fhir_cml.web.settings import load_settings
from tests.support.cds import SigningEhr, patient_view, unsigned

from .conftest import PUBLIC

DATA = Path(__file__).resolve().parents[1] / "data" / "cds"
ISS = "https://ehr.example.org"
JWKS_URL = "https://ehr.example.org/jwks"
OTHER_JWKS = "https://ehr.example.org/rotated-jwks"
AUD = f"{PUBLIC}/cds-services/cml-monitoring"
NOW = 1_900_000_000.0


class Clock:
    def __init__(self, start: float = 0.0) -> None:
        self.value = start

    def __call__(self) -> float:
        return self.value


@pytest.fixture
def ehr() -> SigningEhr:
    return SigningEhr.make(ISS)


@pytest.fixture
def state(tmp_path: Path) -> Iterator[CdsState]:
    store = StateStore(str(tmp_path / "state.sqlite3"))
    store.create_all()
    yield CdsState(store)
    store.close()


@pytest.fixture
def jwks_server(ehr: SigningEhr) -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(JWKS_URL, json=ehr.jwks)
        yield mock


def make_verifier(
    state: CdsState,
    *,
    now: float = NOW,
    clock: Clock | None = None,
    issuer: dict[str, Any] | None = None,
    **settings: Any,
) -> TokenVerifier:
    config = {
        "public_base_url": PUBLIC,
        "cds_issuers": [issuer or {"iss": ISS, "jwks_url": JWKS_URL, "jku": [OTHER_JWKS]}],
        **settings,
    }
    chosen = load_settings(config)
    cache = JwksCache(
        chosen.cds_jwks_cache_seconds, chosen.cds_jwks_refresh_seconds, clock=clock or Clock()
    )
    return TokenVerifier(TokenPolicy.cds(chosen), state, cache, now=lambda: now)


def refused(verifier: TokenVerifier, token: str | None, match: str, aud: str = AUD) -> None:
    header = None if token is None else f"Bearer {token}"
    with pytest.raises(AuthenticationError, match=match) as caught:
        verifier.verify(header, [aud])
    assert caught.value.status == 401


# --- accepted -------------------------------------------------------------------------------


def test_a_valid_rs384_token_is_accepted(
    ehr: SigningEhr, state: CdsState, jwks_server: responses.RequestsMock
) -> None:
    verifier = make_verifier(state)
    verified = verifier.verify(f"Bearer {ehr.token(AUD, now=NOW, tenant='t-1')}", [AUD])
    assert verified.iss == ISS
    assert verified.tenant == "t-1"
    assert verified.sub == "ehr-client"


@pytest.mark.parametrize("alg", ["ES384", "RS256", "ES256", "PS384"])
def test_other_asymmetric_algorithms_when_configured(state: CdsState, alg: str) -> None:
    signer = SigningEhr.make(ISS, alg=alg)
    verifier = make_verifier(
        state,
        issuer={"iss": ISS, "jwks": signer.jwks},
        cds_algorithms=["RS384", "ES384", alg],
    )
    assert verifier.verify(f"Bearer {signer.token(AUD, now=NOW)}", [AUD]).iss == ISS


def test_an_audience_array_holding_the_endpoint_is_accepted(
    ehr: SigningEhr, state: CdsState, jwks_server: responses.RequestsMock
) -> None:
    token = ehr.token([AUD, "https://elsewhere.example.org"], now=NOW)
    assert make_verifier(state).verify(f"Bearer {token}", [AUD]).iss == ISS


def test_the_specifications_own_example_token_verifies(state: CdsState) -> None:
    """The token printed in CDS Hooks' "Trusting CDS Clients" example, with its JWK Set served
    at its jku, checked between its iat and exp."""
    example = json.loads((DATA / "jwt-example.json").read_text())
    payload = example["payload"]
    issuer = {"iss": payload["iss"], "jku": [example["header"]["jku"]]}
    verifier = make_verifier(
        state,
        now=payload["exp"] - 60,
        issuer=issuer,
        public_base_url="https://cds.example.org",
        cds_max_token_lifetime=payload["exp"] - payload["iat"],
    )
    with responses.RequestsMock() as mock:
        mock.get(example["header"]["jku"], json=example["jwks"])
        verified = verifier.verify(f"Bearer {example['token']}", [payload["aud"]])
    assert verified.jti == payload["jti"]
    assert verified.tenant == payload["tenant"]
    refused(verifier, example["token"], "jti replayed", aud=payload["aud"])


def test_leeway_admits_a_token_that_just_expired(
    ehr: SigningEhr, state: CdsState, jwks_server: responses.RequestsMock
) -> None:
    token = ehr.token(AUD, now=NOW - 330)  # expired 30 s ago; leeway 60 s
    assert make_verifier(state).verify(f"Bearer {token}", [AUD]).iss == ISS


# --- refused --------------------------------------------------------------------------------


def test_expired(ehr: SigningEhr, state: CdsState, jwks_server: responses.RequestsMock) -> None:
    refused(make_verifier(state), ehr.token(AUD, now=NOW - 400), "expired")


def test_issued_in_the_future(
    ehr: SigningEhr, state: CdsState, jwks_server: responses.RequestsMock
) -> None:
    refused(make_verifier(state), ehr.token(AUD, now=NOW + 120), "iat is in the future")


@pytest.mark.parametrize(
    "aud",
    [
        f"{PUBLIC}/cds-services/cml-tki-order",
        f"{PUBLIC}/cds-services/cml-monitoring/",
        f"{PUBLIC}/cds-services",
        "https://cml.example.org.attacker.example/cds-services/cml-monitoring",
        ["https://other.example.org"],
    ],
)
def test_wrong_audience(
    ehr: SigningEhr, state: CdsState, jwks_server: responses.RequestsMock, aud: Any
) -> None:
    refused(make_verifier(state), ehr.token(aud, now=NOW), "aud must be the endpoint called")


def test_alg_none(ehr: SigningEhr, state: CdsState, jwks_server: responses.RequestsMock) -> None:
    claims = json.loads(
        base64.urlsafe_b64decode(ehr.token(AUD, now=NOW).split(".")[1] + "==").decode()
    )
    token = unsigned({"alg": "none", "typ": "JWT", "kid": ehr.kid}, claims)
    refused(make_verifier(state), token, "algorithm 'none' is not accepted")


def test_hs256_signed_with_the_public_key_as_secret(
    ehr: SigningEhr, state: CdsState, jwks_server: responses.RequestsMock
) -> None:
    """The classic key-confusion attack: HMAC keyed with the (public) RSA key."""
    public_pem = ehr.key.as_pem(private=False)
    header = {"alg": "HS256", "typ": "JWT", "kid": ehr.kid}
    payload = {"iss": ISS, "aud": AUD, "exp": NOW + 300, "iat": NOW, "jti": "hs"}
    signing_input = unsigned(header, payload).rsplit(".", 1)[0]
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    token = signing_input + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
    refused(make_verifier(state), token, "algorithm 'HS256' is not accepted")


@pytest.mark.parametrize(("signed", "published"), [("ES384", "RS384"), ("RS384", "ES384")])
def test_an_allowed_algorithm_with_a_key_of_another_type(
    state: CdsState, signed: str, published: str
) -> None:
    signer = SigningEhr.make(ISS, alg=signed, kid="shared")
    other = SigningEhr.make(ISS, alg=published, kid="shared")
    verifier = make_verifier(state, issuer={"iss": ISS, "jwks": other.jwks})
    refused(verifier, signer.token(AUD, now=NOW), "key does not match")


def test_rs256_is_refused_unless_configured(state: CdsState) -> None:
    signer = SigningEhr.make(ISS, alg="RS256")
    verifier = make_verifier(state, issuer={"iss": ISS, "jwks": signer.jwks})
    refused(verifier, signer.token(AUD, now=NOW), "algorithm 'RS256' is not accepted")


def test_replayed_jti(
    ehr: SigningEhr, state: CdsState, jwks_server: responses.RequestsMock
) -> None:
    verifier = make_verifier(state)
    token = ehr.token(AUD, now=NOW)
    verifier.verify(f"Bearer {token}", [AUD])
    refused(verifier, token, "jti replayed")
    # the same jti in a new token is a replay too; another jti is not
    refused(verifier, ehr.token(AUD, now=NOW, jti=_jti(token)), "jti replayed")
    verifier.verify(f"Bearer {ehr.token(AUD, now=NOW)}", [AUD])


def test_replay_is_seen_by_every_worker_sharing_the_state_store(
    ehr: SigningEhr, tmp_path: Path, jwks_server: responses.RequestsMock
) -> None:
    stores = [StateStore(str(tmp_path / "shared.sqlite3")) for _ in range(2)]
    for store in stores:
        store.create_all()
    first, second = (make_verifier(CdsState(store)) for store in stores)
    token = ehr.token(AUD, now=NOW)
    first.verify(f"Bearer {token}", [AUD])
    refused(second, token, "jti replayed")
    for store in stores:
        store.close()


def test_unknown_issuer(state: CdsState, jwks_server: responses.RequestsMock) -> None:
    stranger = SigningEhr.make("https://stranger.example.org")
    refused(make_verifier(state), stranger.token(AUD, now=NOW), "not on the allow-list")


def test_jku_not_on_the_allow_list_is_never_fetched(
    ehr: SigningEhr, state: CdsState, jwks_server: responses.RequestsMock
) -> None:
    attacker = SigningEhr.make(ISS, kid=ehr.kid)
    jwks_server.get("https://attacker.example.org/jwks", json=attacker.jwks)
    token = attacker.token(AUD, now=NOW, header={"jku": "https://attacker.example.org/jwks"})
    refused(make_verifier(state), token, "jku header names a JWK Set not on the allow-list")
    assert not [c for c in jwks_server.calls if "attacker" in c.request.url]


def test_jku_on_the_allow_list_is_followed(ehr: SigningEhr, state: CdsState) -> None:
    rotated = SigningEhr.make(ISS, kid="next")
    with responses.RequestsMock() as mock:
        mock.get(OTHER_JWKS, json=rotated.jwks)
        token = rotated.token(AUD, now=NOW, header={"jku": OTHER_JWKS})
        assert make_verifier(state).verify(f"Bearer {token}", [AUD]).iss == ISS


@pytest.mark.parametrize("part", [1, 2])
def test_tampered_token(
    ehr: SigningEhr, state: CdsState, jwks_server: responses.RequestsMock, part: int
) -> None:
    pieces = ehr.token(AUD, now=NOW).split(".")
    if part == 1:  # another payload under the original signature
        claims = json.loads(base64.urlsafe_b64decode(pieces[1] + "==").decode())
        claims["sub"] = "someone-else"
        pieces[1] = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    else:  # a flipped bit in the signature
        raw = bytearray(base64.urlsafe_b64decode(pieces[2] + "=="))
        raw[10] ^= 0x01
        pieces[2] = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    refused(make_verifier(state), ".".join(pieces), "signature does not verify")


def test_a_token_signed_by_another_key_with_the_same_kid(
    ehr: SigningEhr, state: CdsState, jwks_server: responses.RequestsMock
) -> None:
    impostor = SigningEhr.make(ISS, kid=ehr.kid)
    refused(make_verifier(state), impostor.token(AUD, now=NOW), "signature does not verify")


@pytest.mark.parametrize("claim", ["jti", "exp", "iat", "aud"])
def test_missing_claims(
    ehr: SigningEhr, state: CdsState, jwks_server: responses.RequestsMock, claim: str
) -> None:
    refused(make_verifier(state), ehr.token(AUD, now=NOW, drop=[claim]), "lacks the claim")


def test_a_token_that_lives_too_long(
    ehr: SigningEhr, state: CdsState, jwks_server: responses.RequestsMock
) -> None:
    token = ehr.token(AUD, now=NOW, lifetime=7200)
    refused(make_verifier(state), token, "lives 7200 s")


def test_sub_is_checked_when_the_issuer_names_one(ehr: SigningEhr, state: CdsState) -> None:
    issuer = {"iss": ISS, "jwks": ehr.jwks, "sub": "the-ehr"}
    verifier = make_verifier(state, issuer=issuer)
    refused(verifier, ehr.token(AUD, now=NOW), "sub claim")
    assert verifier.verify(f"Bearer {ehr.token(AUD, now=NOW, sub='the-ehr')}", [AUD])


@pytest.mark.parametrize(
    ("header", "match"),
    [
        (None, "no Authorization header"),
        ("Basic dXNlcjpwYXNz", "not a Bearer token"),
        ("Bearer ", "not a Bearer token"),
        ("Bearer not-a-jwt", "not a signed JWT"),
        ("Bearer a.b.c", "not a signed JWT"),
        ("Bearer " + "A" * 20000, "too large"),
    ],
)
def test_malformed_authorization(state: CdsState, header: str | None, match: str) -> None:
    verifier = make_verifier(state)
    with pytest.raises(AuthenticationError, match=match):
        verifier.verify(header, [AUD])


@pytest.mark.parametrize(
    ("header", "match"),
    [
        ({"typ": "at+jwt"}, "typ must be JWT"),
        ({"typ": None}, "no typ"),  # CDS Hooks: typ REQUIRED, fixed value JWT
        ({"crit": ["kid"]}, "critical header"),
        ({"kid": ""}, "no kid"),
    ],
)
def test_header_checks(
    ehr: SigningEhr,
    state: CdsState,
    jwks_server: responses.RequestsMock,
    header: dict[str, Any],
    match: str,
) -> None:
    refused(make_verifier(state), ehr.token(AUD, now=NOW, header=header), match)


def test_a_typ_that_is_not_a_string(ehr: SigningEhr, state: CdsState) -> None:
    claims = {"iss": ISS, "aud": AUD, "exp": NOW + 300, "iat": NOW, "jti": "j"}
    token = unsigned({"alg": "RS384", "typ": 1, "kid": ehr.kid}, claims, b"sig")
    refused(make_verifier(state), token, "typ must be JWT")


@pytest.mark.parametrize(
    ("jti", "match"),
    [
        ("x" * 257, "jti claim is longer than 256 characters"),
        ("", "jti claim must be a non-empty string"),
        (12, "jti claim must be a non-empty string"),
        ("a\udc80b", "not text"),
        ("a\nb", "not text"),
    ],
)
def test_unusable_jti_values_are_refused_with_their_reason(
    ehr: SigningEhr, state: CdsState, jwks_server: responses.RequestsMock, jti: Any, match: str
) -> None:
    refused(make_verifier(state), ehr.token(AUD, now=NOW, jti=jti), match)


def test_a_jti_of_the_longest_length_is_accepted(
    ehr: SigningEhr, state: CdsState, jwks_server: responses.RequestsMock
) -> None:
    token = ehr.token(AUD, now=NOW, jti="x" * 256)
    assert make_verifier(state).verify(f"Bearer {token}", [AUD]).jti == "x" * 256


# --- the JWK Set cache ----------------------------------------------------------------------


def test_keys_are_cached_and_refetched_for_an_unknown_kid(state: CdsState) -> None:
    old = SigningEhr.make(ISS, kid="old")
    new = SigningEhr.make(ISS, kid="new")
    clock = Clock()
    verifier = make_verifier(state, clock=clock)
    with responses.RequestsMock() as mock:
        mock.get(JWKS_URL, json=old.jwks)
        for _ in range(3):
            verifier.verify(f"Bearer {old.token(AUD, now=NOW)}", [AUD])
        assert verifier.jwks.fetches == 1
        # the EHR rotates its key: the first token with the new kid makes us fetch again
        mock.replace(responses.GET, JWKS_URL, json={"keys": old.jwks["keys"] + new.jwks["keys"]})
        clock.value += 31
        verifier.verify(f"Bearer {new.token(AUD, now=NOW)}", [AUD])
        assert verifier.jwks.fetches == 2


def test_unknown_kids_do_not_make_us_hammer_the_ehr(
    ehr: SigningEhr, state: CdsState, jwks_server: responses.RequestsMock
) -> None:
    clock = Clock()
    verifier = make_verifier(state, clock=clock)
    verifier.verify(f"Bearer {ehr.token(AUD, now=NOW)}", [AUD])
    for n in range(5):
        stranger = SigningEhr.make(ISS, kid=f"made-up-{n}")
        refused(verifier, stranger.token(AUD, now=NOW), "no key")
    assert verifier.jwks.fetches == 1  # within FHIR_CML_CDS_JWKS_REFRESH_SECONDS


def test_keys_already_known_survive_a_failed_refetch(ehr: SigningEhr, state: CdsState) -> None:
    clock = Clock()
    verifier = make_verifier(state, clock=clock)
    with responses.RequestsMock() as mock:
        mock.get(JWKS_URL, json=ehr.jwks)
        verifier.verify(f"Bearer {ehr.token(AUD, now=NOW)}", [AUD])
        mock.replace(responses.GET, JWKS_URL, status=503)
        clock.value += 4000  # the cache is stale; the refetch fails
        verifier.verify(f"Bearer {ehr.token(AUD, now=NOW)}", [AUD])


def test_an_unreachable_jwks_is_a_401(ehr: SigningEhr, state: CdsState) -> None:
    with responses.RequestsMock() as mock:
        mock.get(JWKS_URL, status=500)
        refused(make_verifier(state), ehr.token(AUD, now=NOW), "could not be fetched")


def test_a_failing_jwks_url_is_not_asked_again_until_its_backoff_ends(
    ehr: SigningEhr, state: CdsState
) -> None:
    clock = Clock()
    verifier = make_verifier(state, clock=clock)
    with responses.RequestsMock() as mock:
        mock.get(JWKS_URL, status=503)
        for _ in range(10):  # a stream of tokens: one fetch, then refusals without asking
            refused(verifier, ehr.token(AUD, now=NOW), "could not be fetched")
        assert verifier.jwks.fetches == 1
        for wait, fetches in [(4.9, 1), (0.2, 2), (9.8, 2), (0.3, 3), (19.8, 3), (0.3, 4)]:
            clock.value += wait  # backoff 5 s, then 10 s, then 20 s
            refused(verifier, ehr.token(AUD, now=NOW), "could not be fetched")
            assert verifier.jwks.fetches == fetches, wait
        mock.replace(responses.GET, JWKS_URL, json=ehr.jwks)
        clock.value += 40
        assert verifier.verify(f"Bearer {ehr.token(AUD, now=NOW)}", [AUD]).iss == ISS
        assert verifier.jwks.fetches == 5


def test_the_backoff_stops_growing(ehr: SigningEhr, state: CdsState) -> None:
    clock = Clock()
    verifier = make_verifier(state, clock=clock)
    with responses.RequestsMock() as mock:
        mock.get(JWKS_URL, status=500)
        for _ in range(12):
            clock.value += 301
            refused(verifier, ehr.token(AUD, now=NOW), "could not be fetched")
        assert verifier.jwks.fetches == 12
        refused(verifier, ehr.token(AUD, now=NOW), "next try in 300 s")


class HangingJwks:
    """A JWK Set URL that never answers (or trickles its answer a byte at a time)."""

    def __init__(self, trickle: bool = False) -> None:
        self.hits = 0
        self.release = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.hits += 1
                if trickle:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    for byte in b'{"keys": [' + b" " * 1000:
                        if outer.release.wait(0.05):
                            return
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                else:
                    outer.release.wait(30)

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("trickle", [False, True])
def test_a_hanging_jwks_url_costs_one_short_fetch(
    ehr: SigningEhr, state: CdsState, trickle: bool
) -> None:
    """Real sockets: the fetch gives up after its timeout (also when bytes keep trickling in),
    and the requests after it are refused at once, whatever the number of threads asking."""
    hanging = HangingJwks(trickle)
    try:
        chosen = load_settings(
            {"public_base_url": PUBLIC, "cds_issuers": [{"iss": ISS, "jwks_url": hanging.url}]}
        )
        cache = JwksCache(3600, 30, timeout=0.5)
        verifier = TokenVerifier(TokenPolicy.cds(chosen), state, cache, now=lambda: NOW)
        errors: list[str] = []

        def attempt() -> None:
            try:
                verifier.verify(f"Bearer {ehr.token(AUD, now=NOW)}", [AUD])
            except AuthenticationError as err:
                errors.append(err.message)

        threads = [threading.Thread(target=attempt) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=20)
        for _ in range(5):
            attempt()
        assert len(errors) == 9
        assert all("could not be fetched" in e for e in errors)
        assert hanging.hits == 1
        assert cache.fetches == 1
    finally:
        hanging.close()


# --- over HTTP ------------------------------------------------------------------------------


def test_a_refused_token_is_a_401_operation_outcome(
    make_app: Callable[..., Flask], ehr: SigningEhr
) -> None:
    client = make_app(cds_issuers=[{"iss": ISS, "jwks": ehr.jwks}]).test_client()
    body = patient_view([], "p1")
    stranger = SigningEhr.make("https://stranger.example.org")
    response = client.post(
        "/cds-services/cml-monitoring",
        json=body,
        headers={"Authorization": f"Bearer {stranger.token(AUD)}"},
    )
    assert response.status_code == 401
    assert response.mimetype == "application/json"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "login"
    # without any token
    assert client.post("/cds-services/cml-monitoring", json=body).status_code == 401
    # and with a good one: 200
    good = client.post(
        "/cds-services/cml-monitoring",
        json=body,
        headers={"Authorization": f"Bearer {ehr.token(AUD)}"},
    )
    assert good.status_code == 200, good.get_data(as_text=True)


def test_discovery_needs_no_token(client: Any) -> None:
    assert client.get("/cds-services").status_code == 200


def _jti(token: str) -> str:
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "==").decode())
    return str(claims["jti"])


def test_tokens_made_here_have_distinct_jtis(ehr: SigningEhr) -> None:
    assert len({_jti(ehr.token(AUD, now=time.time())) for _ in range(20)}) == 20
