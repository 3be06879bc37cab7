"""Settings of the researcher web UI (env ``STAGER_...``, nested with ``__``)."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

from shared.settings import FileSecret, FileText, StagerSettings


class UiOidcSettings(BaseModel):
    """The UI as an OIDC relying party (a confidential client of the provider)."""

    issuer: str = ""
    client_id: str = "stager-ui"
    client_secret: FileSecret = SecretStr("")
    scopes: str = "openid profile email offline_access"
    username_claim: str = Field(
        default="preferred_username", description="ID-token claim holding the Unix user name"
    )
    refresh_margin: float = Field(
        default=30.0, ge=0, description="refresh the access token this many seconds early"
    )
    leeway: float = Field(default=30.0, ge=0)
    ca_file: str | None = Field(default=None, description="CA bundle for the provider (TLS)")

    @field_validator("issuer")
    @classmethod
    def _strip(cls, v: str) -> str:
        return v.rstrip("/")


class RepositorySettings(BaseModel):
    """How the repository login is checked and where browsing starts.

    ``check = "irods"`` logs in to iRODS (``STAGER_IRODS__HOST`` etc.; only host, port,
    zone and TLS settings are used, the user and password are the researcher's);
    ``check = "webdav"`` sends a PROPFIND to ``webdav_url`` with the typed credentials, as
    the system we replace did. Browsing always uses the iRODS connection made at login.
    """

    check: Literal["irods", "webdav"] = "irods"
    webdav_url: str = ""
    webdav_ca_file: str | None = None
    root: str = Field(default="/{zone}/home/{user}", description="where the repository pane starts")
    browse_idle: float = Field(
        default=900.0,
        gt=0,
        description="seconds an unused repository connection stays open (then log in again)",
    )
    threads: int = Field(default=8, ge=1, le=64)

    @model_validator(mode="after")
    def _webdav_url(self) -> RepositorySettings:
        if self.check == "webdav" and not self.webdav_url.startswith(("http://", "https://")):
            raise ValueError(
                "STAGER_REPOSITORY__WEBDAV_URL must be an http(s) URL when "
                "STAGER_REPOSITORY__CHECK=webdav"
            )
        return self


class UiSettings(StagerSettings):
    """Everything the UI reads; secrets are redacted in ``repr``."""

    host: str = "127.0.0.1"
    port: int = Field(default=8083, ge=0, le=65535)
    public_url: str = Field(
        default="http://127.0.0.1:8083",
        description="the URL browsers use for this UI (the OIDC redirect URI is built on it)",
    )
    api_url: str = "http://127.0.0.1:8080"
    api_ca_file: str | None = None
    api_timeout: float = Field(default=20.0, gt=0)
    public_keys: list[FileText] = Field(
        default_factory=list,
        description="the API's PEM public keys (or file:/path); the first seals passwords",
    )
    cookie_secure: bool = Field(
        default=True, description="send the session cookie over HTTPS only (off: plain HTTP)"
    )
    session_lifetime: float = Field(default=4 * 3600.0, gt=0, description="seconds")
    login_lifetime: float = Field(default=600.0, gt=0, description="seconds to finish a login")
    max_sessions: int = Field(default=10_000, ge=1)
    local_root: str = Field(
        default="/", description="where the project-storage pane opens ({user}: the Unix user)"
    )
    page_size: int = Field(default=200, ge=10, le=5000, description="entries per listing page")
    poll_interval: float = Field(default=2.0, gt=0, description="seconds between job polls")
    jobs_page_size: int = Field(
        default=25, ge=1, le=100, description="jobs per history page (paged by the API)"
    )
    help_url: str = ""
    oidc: UiOidcSettings = Field(default_factory=UiOidcSettings)
    repository: RepositorySettings = Field(default_factory=RepositorySettings)

    @field_validator("public_url", "api_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL such as https://stager.example.org")
        return v.rstrip("/")

    @field_validator("public_keys")
    @classmethod
    def _pem(cls, keys: list[str]) -> list[str]:
        for k in keys:
            if "-----BEGIN" not in k:
                raise ValueError("public_keys entries must be PEM text or file:/path/to/key.pem")
        return keys

    @property
    def origin(self) -> str:
        """``scheme://host[:port]`` of :attr:`public_url` (what browsers send as Origin)."""
        parts = urlsplit(self.public_url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def redirect_uri(self) -> str:
        """Where the provider sends the browser back with the code."""
        return f"{self.public_url}/auth/callback"

    @property
    def post_logout_uri(self) -> str:
        """Where the provider sends the browser after ending its session."""
        return f"{self.public_url}/auth/logged-out"
