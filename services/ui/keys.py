"""Typed application keys of the UI (no string keys)."""

from __future__ import annotations

import aiohttp
import jinja2
from aiohttp import web

from services.ui.apiclient import ApiClient
from services.ui.oidc import OidcClient
from services.ui.repository import Repository
from services.ui.sessions import Session, SessionStore
from services.ui.settings import UiSettings
from shared.crypto import Sealer

SETTINGS = web.AppKey("settings", UiSettings)
SESSIONS = web.AppKey("sessions", SessionStore)
SEALER = web.AppKey("sealer", Sealer)
TEMPLATES = web.AppKey("templates", jinja2.Environment)
HTTP = web.AppKey("http", aiohttp.ClientSession)
OIDC = web.AppKey("oidc", OidcClient)
API = web.AppKey("api", ApiClient)
REPOSITORY = web.AppKey("repository", Repository)

#: The request's session (set by the session middleware; None for a new visitor).
SESSION = web.RequestKey("session", Session)
