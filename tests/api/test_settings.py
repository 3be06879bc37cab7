"""API settings from the environment: nesting, secrets from files, redacted repr."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.api.app import create_app
from services.api.auth import OidcSettings, hash_password
from services.api.settings import ApiSettings
from shared.crypto import generate_keypair
from shared.errors import ConfigError


def test_settings_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "amqp-url"
    secret.write_text("amqp://svc:amqp-Secret-Pw@rabbit:5672/\n")
    pub = tmp_path / "public.pem"
    pub.write_bytes(generate_keypair(2048)[1])
    accounts = {"streamer": {"password_hash": hash_password("x"), "act_for": ["*"]}}
    monkeypatch.setenv("STAGER_BROKER__URL", f"file:{secret}")
    monkeypatch.setenv("STAGER_BROKER__PREFIX", "prod")
    monkeypatch.setenv("STAGER_IRODS__PASSWORD", "irods-Secret-Pw")
    monkeypatch.setenv("STAGER_PUBLIC_KEYS", json.dumps([f"file:{pub}"]))
    monkeypatch.setenv("STAGER_AUTH__SERVICE_ACCOUNTS", json.dumps(accounts))
    monkeypatch.setenv("STAGER_RETENTION__COMPLETED_HOURS", "12")
    s = ApiSettings()
    assert s.broker.url.get_secret_value() == "amqp://svc:amqp-Secret-Pw@rabbit:5672/"
    assert s.broker.prefix == "prod" and s.retention.completed_hours == 12
    assert s.public_keys[0].startswith("-----BEGIN PUBLIC KEY")
    assert s.auth.service_accounts["streamer"].act_for == ["*"]
    shown = repr(s) + str(s.model_dump())
    assert "amqp-Secret-Pw" not in shown and "irods-Secret-Pw" not in shown
    assert "scrypt$" not in repr(s.auth.service_accounts["streamer"])


def test_missing_secret_file_and_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STAGER_IRODS__PASSWORD", f"file:{tmp_path / 'absent'}")
    with pytest.raises(ValueError, match="cannot read secret file"):
        ApiSettings()
    monkeypatch.delenv("STAGER_IRODS__PASSWORD")
    with pytest.raises(ConfigError, match="STAGER_PUBLIC_KEYS"):
        create_app(ApiSettings())
    with pytest.raises(ValueError, match="PEM"):
        ApiSettings(public_keys=["not a key"])


def test_oidc_needs_an_audience() -> None:
    with pytest.raises(ValueError, match="AUDIENCE is empty while OIDC is enabled") as e:
        OidcSettings(issuer="https://idp.example.org")
    assert "Traceback" not in str(e.value)
    assert OidcSettings(issuer="https://idp.example.org", audience="stager").audience
    assert OidcSettings().issuer == ""  # OIDC off: no audience needed
