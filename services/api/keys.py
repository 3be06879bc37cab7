"""Typed application keys of the API (no string keys)."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from services.api.metrics import Metrics
from services.api.settings import ApiSettings
from shared.apibus import ApiBus
from shared.auth import Authenticator
from shared.crypto import Sealer
from shared.dac import DacResolver
from shared.dispatcher import Dispatcher
from shared.taskstore import TaskStore

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
