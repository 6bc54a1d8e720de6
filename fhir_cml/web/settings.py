"""The service's settings: environment variables ``FHIR_CML_*``, an optional file, checked at start.

Sources, highest first: the mapping given to ``create_app(config)`` (tests, embedding), the
environment, the file named by ``FHIR_CML_CONFIG`` (TOML, or JSON when it ends in ``.json``; keys
are the setting names without the prefix, in lower case), the defaults. Names shared with
``fhir-cml sync`` mean the same there (``FHIR_CML_FHIR_BASE``, ``FHIR_CML_STATE``,
``FHIR_CML_TOKEN``, ``FHIR_CML_CLIENT_ID``, ...), so one environment configures both.

A missing or wrong setting is a :class:`~fhir_cml.errors.ConfigurationError` naming the
environment variable, raised before the app serves anything.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    JsonConfigSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from fhir_cml.app import WriteSettings
from fhir_cml.domain import Guideline
from fhir_cml.ehr.auth import DEFAULT_SCOPE
from fhir_cml.errors import ConfigurationError

PREFIX: Final = "FHIR_CML_"
CONFIG_ENV: Final = "FHIR_CML_CONFIG"
# Asymmetric signatures only: CDS Hooks forbids `none` and every symmetric (HMAC) algorithm.
JWT_ALGORITHMS: Final = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}
)
DEFAULT_JWT_ALGORITHMS: Final = ("RS384", "ES384")  # the two the CDS Hooks spec recommends
# Authorization servers commonly sign access tokens with RS256 too.
DEFAULT_API_ALGORITHMS: Final = ("RS256", "RS384", "ES256", "ES384")


def _http_url(value: str, name: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{name} must be an absolute http(s) URL, not {value!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"{name} must not carry a query or fragment: {value!r}")
    return value.rstrip("/")


def _origin(value: str) -> str:
    """An origin as a CSP source: ``https://host[:port]``, nothing else (no path, no wildcard)."""
    parts = urlsplit(value.strip())
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or "*" in value
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or parts.username
    ):
        raise ValueError(f"an EHR origin must look like https://ehr.example.org, not {value!r}")
    return f"{parts.scheme}://{parts.netloc.lower()}"


def _string_list(value: Any) -> Any:
    """A list from JSON (``["a","b"]``) or from a comma-separated string (``a,b``)."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


class TrustedIssuer(BaseModel):
    """An issuer of bearer JWTs the service accepts: its ``iss`` and where its public keys are.

    For CDS Hooks it is an EHR (``FHIR_CML_CDS_ISSUERS``); for ``Patient/[id]/$cml-assess`` it is
    the authorization server that issues the callers' access tokens (``FHIR_CML_API_ISSUERS``).

    ``jwks_url`` is fetched (and cached); ``jwks`` gives the keys out of band instead. A token's
    ``jku`` header is honoured only when it is ``jwks_url`` or listed in ``jku``. ``sub``, when
    set, is the value the token's ``sub`` must have (CDS Hooks 2.0 does not require ``sub``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    iss: str = Field(min_length=1)
    jwks_url: str | None = None
    jku: tuple[str, ...] = ()
    jwks: dict[str, Any] | None = None
    sub: str | None = None

    @field_validator("jwks_url")
    @classmethod
    def _jwks_url(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value, "jwks_url")

    @field_validator("jku")
    @classmethod
    def _jku(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_http_url(v, "jku") for v in value)

    @model_validator(mode="after")
    def _has_keys(self) -> TrustedIssuer:
        if self.jwks_url is None and not self.jku and self.jwks is None:
            raise ValueError(f"issuer {self.iss!r} needs jwks_url, jku or jwks")
        if self.jwks is not None and not isinstance(self.jwks.get("keys"), list):
            raise ValueError(f"issuer {self.iss!r}: jwks must be a JWK Set with a 'keys' list")
        return self

    def allowed_jku(self, url: str) -> bool:
        return url == self.jwks_url or url in self.jku


CdsIssuer = TrustedIssuer


class Settings(BaseSettings):
    """Every setting of the service; the environment variable is ``FHIR_CML_`` + the name."""

    model_config = SettingsConfigDict(
        env_prefix=PREFIX, extra="ignore", frozen=True, case_sensitive=False
    )

    # Where the service is reached: CDS Hooks audiences and links are built on it.
    public_base_url: str
    # The EHR's FHIR server, for Patient/[id]/$cml-assess and readiness (optional).
    fhir_base: str | None = None
    token: SecretStr | None = None
    client_id: str | None = None
    private_key: Path | None = None
    key_id: str | None = None
    key_alg: Literal["RS384", "ES384", "RS256", "ES256", "RS512", "ES512"] | None = None
    token_url: str | None = None
    scope: str = DEFAULT_SCOPE
    fhir_connect_timeout: float = Field(default=5.0, gt=0)
    fhir_timeout: float = Field(default=30.0, gt=0)
    ready_timeout: float = Field(default=2.0, gt=0)
    write_mode: Literal["auto", "transaction", "batch"] = "transaction"
    # Name fhir-cml's profiles in meta.profile of what is written (docs/sync.md: only for EHRs
    # that hold them; the token then needs read access to StructureDefinition).
    claim_profiles: bool = False
    # State store (SQLite path or database URL), shared with `fhir-cml sync`.
    state: str | None = None
    # Requests
    max_content_length: int = Field(default=16 * 1024 * 1024, gt=0)
    guideline: Guideline = Guideline.ELN2020
    conversion_factor: float | None = Field(default=None, gt=0, le=100)
    # CDS Hooks
    cds_issuers: tuple[TrustedIssuer, ...] = ()
    cds_algorithms: Annotated[tuple[str, ...], NoDecode] = DEFAULT_JWT_ALGORITHMS
    cds_leeway: int = Field(default=60, ge=0, le=600)
    cds_max_token_lifetime: int = Field(default=3600, gt=0)
    cds_jwks_cache_seconds: int = Field(default=3600, ge=0)
    cds_jwks_refresh_seconds: int = Field(default=30, ge=0)
    cds_jwks_timeout: float = Field(default=2.0, gt=0, le=30)
    cds_fhir_servers: Annotated[tuple[str, ...], NoDecode] = ()
    cds_client_id: str | None = None
    # Browser origins allowed to call the CDS services and feedback (CORS); discovery is open
    # to every origin. "*" allows any (the calls carry bearer JWTs, never cookies).
    cds_cors_origins: Annotated[tuple[str, ...], NoDecode] = ()
    # One deadline per hook call (seconds from its arrival): the FHIR reads it needs run at once
    # within it, and what is not read by then is reported missing.
    cds_deadline: float = Field(default=3.0, gt=0, le=60)
    smart_launch_path: str = "/launch"
    # Callers of Patient/[id]/$cml-assess: SMART Backend Services access tokens that are JWTs
    # from these authorization servers, and/or any token the EHR's introspection endpoint
    # (RFC 7662) says is active. With neither, the patient-level operation is off.
    api_issuers: tuple[TrustedIssuer, ...] = ()
    api_algorithms: Annotated[tuple[str, ...], NoDecode] = DEFAULT_API_ALGORITHMS
    api_leeway: int = Field(default=60, ge=0, le=600)
    api_max_token_lifetime: int = Field(default=3600, gt=0)
    api_introspection_url: str | None = None
    api_introspection_client_id: str | None = None
    api_introspection_client_secret: SecretStr | None = None
    api_introspection_timeout: float = Field(default=2.0, gt=0, le=30)
    api_introspection_cache_seconds: int = Field(default=60, ge=0, le=3600)
    # SMART on FHIR app (fhir_cml.web.smart): the EHRs (FHIR bases, `iss`) allowed to launch it,
    # its registration there, and its sessions.
    smart_issuers: Annotated[tuple[str, ...], NoDecode] = ()
    smart_client_id: str | None = None
    smart_client_secret: SecretStr | None = None
    smart_private_key: Path | None = None
    smart_key_id: str | None = None
    smart_scope: str | None = None
    smart_offline_access: bool = False
    # SMART v2 online_access: a refresh token usable while the user is signed in at the EHR.
    smart_online_access: bool = True
    # EHR origins (https://ehr.example.org) allowed to show the app in a frame; none: no framing.
    smart_frame_ancestors: Annotated[tuple[str, ...], NoDecode] = ()
    smart_session_idle_minutes: int = Field(default=30, gt=0, le=24 * 60)
    smart_session_max_hours: float = Field(default=12.0, gt=0, le=7 * 24)
    # A fixed as-of date for the app's readings (training, demonstrations); unset: today.
    smart_as_of: date | None = None
    # Demo mode: the app over the bundled example patients, without an EHR.
    demo: bool = False
    demo_examples: Path | None = None
    # The site's local codes and units (fhir_cml.web.terminology): ConceptMap files or
    # directories, and a terminology server asked ConceptMap/$translate within a deadline.
    concept_maps: Annotated[tuple[Path, ...], NoDecode] = ()
    # The site's rule settings: a JSON object of the values it changes (docs/rules.md).
    rules_config: Path | None = None
    terminology_server: str | None = None
    terminology_deadline: float = Field(default=1.0, gt=0, le=30)
    # Logs
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("public_base_url")
    @classmethod
    def _public(cls, value: str) -> str:
        return _http_url(value, "the public base URL")

    @field_validator("rules_config")
    @classmethod
    def _rules(cls, value: Path | None) -> Path | None:
        from fhir_cml.app import load_rule_config

        try:
            load_rule_config(value)  # a file that cannot be used stops the start, saying why
        except ConfigurationError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("concept_maps", mode="before")
    @classmethod
    def _map_list(cls, value: Any) -> Any:
        return _string_list(value)

    @field_validator("concept_maps")
    @classmethod
    def _maps(cls, value: tuple[Path, ...]) -> tuple[Path, ...]:
        from fhir_cml.web.terminology import check_concept_maps

        if value:
            check_concept_maps(value)
        return value

    @field_validator("fhir_base", "token_url", "api_introspection_url", "terminology_server")
    @classmethod
    def _urls(cls, value: str | None) -> str | None:
        return None if value in (None, "") else _http_url(str(value), "the URL")

    @field_validator("cds_algorithms", "api_algorithms")
    @classmethod
    def _algorithms(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("at least one algorithm is needed")
        bad = sorted(set(value) - JWT_ALGORITHMS)
        if bad:
            raise ValueError(
                f"not allowed: {', '.join(bad)} (CDS Hooks forbids 'none' and HMAC; allowed: "
                f"{', '.join(sorted(JWT_ALGORITHMS))})"
            )
        return value

    @field_validator("cds_issuers", "api_issuers", mode="before")
    @classmethod
    def _issuers(cls, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value

    @field_validator(
        "cds_algorithms",
        "api_algorithms",
        "cds_fhir_servers",
        "cds_cors_origins",
        "smart_issuers",
        "smart_frame_ancestors",
        mode="before",
    )
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _string_list(value)

    @field_validator("cds_fhir_servers")
    @classmethod
    def _servers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_http_url(v, "a CDS FHIR server") for v in value)

    @field_validator("cds_cors_origins")
    @classmethod
    def _origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple("*" if v.strip() == "*" else _origin(v) for v in value)

    @field_validator("smart_launch_path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must start with '/'")
        return value

    @field_validator("smart_issuers")
    @classmethod
    def _smart_issuers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_http_url(v, "a SMART issuer (FHIR base URL)") for v in value)

    @field_validator("smart_frame_ancestors")
    @classmethod
    def _frame_origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_origin(v) for v in value)

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.token is not None and (self.client_id or self.private_key):
            raise ValueError(
                f"give either {env_name('token')} or {env_name('client_id')}/"
                f"{env_name('private_key')}, not both"
            )
        if bool(self.client_id) != bool(self.private_key):
            raise ValueError(
                f"SMART Backend Services needs both {env_name('client_id')} and "
                f"{env_name('private_key')}"
            )
        if (self.client_id or self.token) and not self.fhir_base:
            given = env_name("token") if self.token is not None else env_name("client_id")
            raise ValueError(f"{given} is given but {env_name('fhir_base')} is not")
        for name in ("cds_issuers", "api_issuers"):
            issuers = [i.iss for i in getattr(self, name)]
            if len(set(issuers)) != len(issuers):
                raise ValueError(f"{env_name(name)} lists an issuer twice")
        if bool(self.api_introspection_client_id) != (
            self.api_introspection_client_secret is not None
        ):
            raise ValueError(
                f"token introspection with HTTP Basic needs both "
                f"{env_name('api_introspection_client_id')} and "
                f"{env_name('api_introspection_client_secret')}"
            )
        if self.terminology_server and self.terminology_deadline >= self.cds_deadline:
            raise ValueError(
                f"{env_name('terminology_deadline')} ({self.terminology_deadline:g} s) must be "
                f"shorter than {env_name('cds_deadline')} ({self.cds_deadline:g} s): translating "
                "the local codes happens within a hook call's deadline"
            )
        if self.smart_issuers and not self.smart_client_id:
            raise ValueError(
                f"{env_name('smart_issuers')} is given but {env_name('smart_client_id')} (the "
                "app's client id at the EHR) is not"
            )
        if self.smart_client_secret is not None and self.smart_private_key is not None:
            raise ValueError(
                f"give either {env_name('smart_client_secret')} or "
                f"{env_name('smart_private_key')}, not both"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = os.environ.get(CONFIG_ENV)
        if path:
            sources.append(_file_source(settings_cls, Path(path)))
        return tuple(sources)

    @property
    def cds_base(self) -> str:
        """``{public base}/cds-services``: the discovery URL an EHR registers."""
        return f"{self.public_base_url}/cds-services"

    @property
    def smart_launch_url(self) -> str:
        return f"{self.public_base_url}{self.smart_launch_path}"

    @property
    def smart_callback_url(self) -> str:
        """The redirect URI to register at the EHR: ``{public base}/smart/callback``."""
        return f"{self.public_base_url}/smart/callback"

    @property
    def fhir_api_base(self) -> str:
        """``{public base}/fhir``: this service's FHIR base, the audience of callers' tokens."""
        return f"{self.public_base_url}/fhir"

    @property
    def writing(self) -> WriteSettings:
        """How writeBack and the SMART app's Accept write (the application service's settings)."""
        return WriteSettings(mode=self.write_mode, claim_profiles=self.claim_profiles)

    @property
    def api_callers_configured(self) -> bool:
        """Whether callers of ``Patient/[id]/$cml-assess`` can be authenticated at all."""
        return bool(self.api_issuers) or self.api_introspection_url is not None

    def issuer(self, iss: str) -> TrustedIssuer | None:
        """The CDS Hooks issuer ``iss`` (an EHR allowed to call the CDS services), if listed."""
        for issuer in self.cds_issuers:
            if issuer.iss == iss:
                return issuer
        return None


def _file_source(settings_cls: type[BaseSettings], path: Path) -> PydanticBaseSettingsSource:
    if not path.is_file():
        raise ConfigurationError(f"{CONFIG_ENV}: no such file: {path}")
    if path.suffix.lower() == ".json":
        return JsonConfigSettingsSource(settings_cls, json_file=path)
    return TomlConfigSettingsSource(settings_cls, toml_file=path)


def env_name(field: str) -> str:
    """The environment variable of a setting: ``public_base_url`` -> ``FHIR_CML_PUBLIC_BASE_URL``."""
    return PREFIX + field.upper()


def load_settings(overrides: Mapping[str, Any] | None = None) -> Settings:
    """The settings from ``overrides``, the environment and the file, or ConfigurationError."""
    try:
        return Settings(**dict(overrides or {}))
    except ValidationError as err:
        raise ConfigurationError(_explain(err)) from None
    except (ValueError, OSError) as err:  # an unreadable file, bad JSON in a variable
        text = re.sub(r'field "(\w+)"', lambda m: env_name(m.group(1)), str(err))
        raise ConfigurationError(f"the settings cannot be read: {text}") from None


def _explain(err: ValidationError) -> str:
    lines = []
    for problem in err.errors():
        loc = problem.get("loc") or ()
        message = str(problem.get("msg", "invalid")).removeprefix("Value error, ")
        if not loc:
            lines.append(message)
            continue
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc[1:])
        lines.append(f"{env_name(str(loc[0]))}{where}: {message}")
    return "invalid settings: " + "; ".join(lines)
