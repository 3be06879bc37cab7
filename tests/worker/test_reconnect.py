"""The worker survives a cut broker connection (robust reconnect restores its consumers)."""

from __future__ import annotations

import asyncio
import contextlib

from tests.conftest import AMQP_URL
from tests.worker.conftest import task_message
from tests.worker.test_pipeline import SERVICE


class CuttableProxy:
    """A TCP proxy to RabbitMQ whose live connections can be cut."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.writers: set[asyncio.StreamWriter] = set()
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def cut(self) -> int:
        n = len(self.writers)
        for w in self.writers:
            w.transport.abort()
        self.writers.clear()
        return n

    async def close(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()


async def test_worker_reconnects_and_keeps_consuming(start_worker, unix_user) -> None:
    user = unix_user()
    proxy = CuttableProxy("127.0.0.1", 5672)
    await proxy.start()
    try:
        creds = AMQP_URL.split("://", 1)[1].split("@", 1)[0]
        url = f"amqp://{creds}@127.0.0.1:{proxy.port}/?reconnect_interval=0.5"
        w = await start_worker(
            transfer_kind="succeed",
            service_credentials=SERVICE,
            amqp_url=url,
        )
        before = task_message(user.pw_name)
        await w.submit(before)
        assert (await w.events.until(before.task_id, {"completed"})).state == "completed"
        assert proxy.cut() > 0
        await asyncio.sleep(2)  # the robust connection reconnects (0.5 s interval)
        after = task_message(user.pw_name)
        await w.submit(after)
        final = await w.events.until(after.task_id, {"completed", "archived"}, limit=30)
        assert final.state == "completed"
        await w.worker.close()
    finally:
        await proxy.close()
