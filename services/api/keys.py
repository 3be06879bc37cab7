"""Typed application keys of the API (no string keys)."""

from __future__ import annotations

from aiohttp import web

from services.api.auth import Authenticator
from services.api.bus import ApiBus
from services.api.dac import DacResolver
from services.api.dispatcher import Dispatcher
from services.api.metrics import Metrics
from services.api.settings import ApiSettings
from services.api.store import TaskStore
from shared.crypto import Sealer
from shared.messaging.signing import Gate, Signer

SETTINGS = web.AppKey("settings", ApiSettings)
STORE = web.AppKey("store", TaskStore)
BUS = web.AppKey("bus", ApiBus)
SEALER = web.AppKey("sealer", Sealer)
AUTH = web.AppKey("auth", Authenticator)
DAC = web.AppKey("dac", DacResolver)
DISPATCHER = web.AppKey("dispatcher", Dispatcher)
METRICS = web.AppKey("metrics", Metrics)
SPEC = web.AppKey("spec", dict)
#: The message signer (role api) and the gate checking what workers send.
SIGNER = web.AppKey("signer", Signer)
GATE = web.AppKey("gate", Gate)
