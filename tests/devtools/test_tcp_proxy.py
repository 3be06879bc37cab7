"""devtools/tcp_proxy: cuts (now and at a random point) and the bandwidth limit, with real
loopback sockets on both sides of the proxy."""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from devtools.tcp_proxy import TcpProxy

MiB = 1024 * 1024


class Sink:
    """A TCP server that counts what each connection sends it, and can echo."""

    def __init__(self, *, echo: bool = False) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.echo = echo
        self.received: list[int] = []
        self.closed = threading.Event()
        self._t = threading.Thread(target=self._serve, daemon=True)
        self._t.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        n = len(self.received)
        self.received.append(0)
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    break
                if not data:
                    break
                self.received[n] += len(data)
                if self.echo:
                    try:
                        conn.sendall(data)
                    except OSError:
                        break
        self.closed.set()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def sink() -> Iterator[Sink]:
    s = Sink(echo=True)
    yield s
    s.close()


def _connect(port: int) -> socket.socket:
    c = socket.create_connection(("127.0.0.1", port), timeout=5)
    return c


def _dead(c: socket.socket) -> bool:
    """True when the peer has closed or reset the connection."""
    try:
        return c.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True


def test_relays_and_cut_closes_both_ends(sink: Sink) -> None:
    with TcpProxy("127.0.0.1", sink.port) as proxy:
        c = _connect(proxy.port)
        c.sendall(b"ping")
        assert c.recv(4) == b"ping"
        assert proxy.open_connections() == 1
        assert proxy.cut() == 1
        assert _dead(c), "the client's side was not closed by the cut"
        assert sink.closed.wait(5), "the server's side was not closed by the cut"
        assert proxy.open_connections() == 0 and proxy.cut_total == 1
        # new connections are relayed again at once
        c2 = _connect(proxy.port)
        c2.sendall(b"again")
        assert c2.recv(5) == b"again"
        c.close()
        c2.close()


def test_random_cut_falls_mid_stream_within_the_budget() -> None:
    sink = Sink()
    try:
        with TcpProxy("127.0.0.1", sink.port) as proxy:
            c = _connect(proxy.port)
            c.sendall(b"x" * 1000)
            deadline = time.monotonic() + 5
            while (not sink.received or sink.received[0] < 1000) and time.monotonic() < deadline:
                time.sleep(0.01)
            assert proxy.cut_at_random(random.Random(7), 300_000) == 1
            budget = random.Random(7).randint(0, 300_000)
            # 1 MiB more than the budget: the cut must fall inside it, at the byte
            with pytest.raises(OSError):
                for _ in range(64):
                    c.sendall(b"y" * 65536)
                    time.sleep(0.005)
            assert sink.closed.wait(5)
            assert sink.received[0] == 1000 + budget
            assert proxy.cut_total == 1
            c.close()
    finally:
        sink.close()


def test_random_cut_of_an_idle_connection_after_idle_after(sink: Sink) -> None:
    with TcpProxy("127.0.0.1", sink.port) as proxy:
        c = _connect(proxy.port)
        c.sendall(b"hi")
        assert c.recv(2) == b"hi"
        t = time.monotonic()
        assert proxy.cut_at_random(random.Random(1), 10 * MiB, idle_after=0.5) == 1
        assert _dead(c)
        assert 0.4 < time.monotonic() - t < 3.0
        c.close()


def _send_time(port: int, size: int) -> float:
    sink_done = threading.Event()
    c = _connect(port)

    def drain() -> None:
        got = 0
        while got < size:
            data = c.recv(1 << 20)
            if not data:
                break
            got += len(data)
        sink_done.set()

    t0 = time.monotonic()
    th = threading.Thread(target=drain, daemon=True)
    th.start()
    c.sendall(b"z" * size)
    assert sink_done.wait(30)
    c.close()
    return time.monotonic() - t0


def test_bandwidth_limit(sink: Sink) -> None:
    size = 2 * MiB  # echoed: 4 MiB through the proxy in all
    with TcpProxy("127.0.0.1", sink.port, rate=8 * MiB) as limited:
        slow = _send_time(limited.port, size)
        assert limited.relayed == 2 * size
    with TcpProxy("127.0.0.1", sink.port) as free:
        fast = _send_time(free.port, size)
    # 4 MiB at 8 MiB/s: half a second at least, and not much more
    assert slow >= 0.45, f"the limit was not applied: {slow:.2f} s"
    assert slow < 3.0, f"far slower than the limit: {slow:.2f} s"
    assert fast < slow / 2, f"unlimited {fast:.2f} s vs limited {slow:.2f} s"


def test_bad_rate_is_refused() -> None:
    with pytest.raises(ValueError, match="rate must be positive"):
        TcpProxy("127.0.0.1", 1, rate=0)
