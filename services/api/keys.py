"""Typed application keys of the API (no string keys)."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from services.api.auth import Authenticator
from services.api.bus import ApiBus
from services.api.dac import DacResolver
from services.api.dispatcher import Dispatcher
from services.api.metrics import Metrics
from services.api.settings import ApiSettings
from services.api.store import TaskStore
from shared.crypto import Sealer

SETTINGS = web.AppKey("settings", ApiSettings)
STORE = web.AppKey("store", TaskStore)
BUS = web.AppKey("bus", ApiBus)
SEALER = web.AppKey("sealer", Sealer)
AUTH = web.AppKey("auth", Authenticator)
HTTP = web.AppKey("http", aiohttp.ClientSession)
DAC = web.AppKey("dac", DacResolver)
DISPATCHER = web.AppKey("dispatcher", Dispatcher)
METRICS = web.AppKey("metrics", Metrics)
SPEC = web.AppKey("spec", dict)
BACKGROUND = web.AppKey("background", list[asyncio.Task[None]])
