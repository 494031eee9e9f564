"""A hostile receiver cannot hold the delivery worker: time and size are bounded."""

from __future__ import annotations

import asyncio
import time

import httpx

from bot.webhooks import ssrf
from bot.webhooks.delivery import RESPONSE_KEPT, Work, attempt

OPEN = ssrf.Policy(allow_private=True, own_public_url="http://127.0.0.1:1", require_https=False)


def _work(port: int) -> Work:
    return Work(
        "dlv_x", 1, f"http://127.0.0.1:{port}/hook", "whsec_AAAA", "evt_x", b"{}", "wh_x", None
    )


async def _serve(handler) -> tuple[asyncio.AbstractServer, int]:  # type: ignore[no-untyped-def]
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_a_trickling_receiver_is_cut_off_at_the_timeout() -> None:
    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        try:
            for _ in range(1000):
                writer.write(b"x")
                await writer.drain()
                await asyncio.sleep(0.2)
        except (ConnectionError, OSError):
            pass

    server, port = await _serve(trickle)
    async with server, httpx.AsyncClient() as client:
        started = time.monotonic()
        outcome = await attempt(client, _work(port), OPEN, timeout=1.0)
        elapsed = time.monotonic() - started
    assert not outcome.ok
    assert outcome.error is not None and "timed out" in outcome.error
    assert elapsed < 3.0  # cut at the 1 s timeout: the trickle would last 200 s


async def test_a_huge_answer_is_not_read_whole() -> None:
    size = 50 * 1024 * 1024

    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n".encode())
        chunk = b"y" * 65536
        try:
            for _ in range(size // len(chunk)):
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, OSError):
            pass

    server, port = await _serve(flood)
    async with server, httpx.AsyncClient() as client:
        started = time.monotonic()
        outcome = await attempt(client, _work(port), OPEN, timeout=5.0)
        elapsed = time.monotonic() - started
    assert outcome.ok and outcome.status_code == 200
    assert outcome.response is not None and len(outcome.response) == RESPONSE_KEPT
    assert elapsed < 3.0  # not 50 MB read (room for a busy machine's pauses)
