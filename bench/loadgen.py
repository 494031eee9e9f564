"""Fallback HTTP/1.1 load generator for ``bench/api.py`` when ``wrk`` is not installed.

Why it exists: the bench must still produce numbers on a machine without wrk. Why it is only a
fallback: it is Python, so on a small machine the client may saturate a core before the server
does, and then every figure measures the client. ``bench/api.py`` prints a warning whenever it
uses this module.

It runs in its own process (never in the orchestrator's), keeps ``--connections`` keep-alive
connections busy for ``--duration`` seconds with pre-built requests (rotated, like the wrk Lua
script does), and prints one JSON object on stdout::

    python bench/loadgen.py SPEC.json

SPEC: ``{"host", "port", "duration", "connections", "timeout", "requests": [{"method", "path",
"headers": {...}, "body": str|null}, ...]}``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    non_2xx: int = 0
    errors: int = 0
    timeouts: int = 0


def build_requests(spec: dict[str, Any]) -> list[bytes]:
    out = []
    for r in spec["requests"]:
        body = (r.get("body") or "").encode()
        lines = [f"{r['method']} {r['path']} HTTP/1.1", f"Host: {spec['host']}:{spec['port']}"]
        lines += [f"{k}: {v}" for k, v in r.get("headers", {}).items()]
        if body or r["method"] in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        out.append(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    return out


async def _read_response(reader: asyncio.StreamReader) -> int:
    """Read one response; returns its status code."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    marker = lower.find(b"\r\ncontent-length:")
    if marker >= 0:
        end = lower.index(b"\r\n", marker + 2)
        length = int(lower[marker + 17 : end].strip())
        if length:
            await reader.readexactly(length)
    elif b"transfer-encoding: chunked" in lower:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status


async def _connection(
    spec: dict[str, Any], requests: list[bytes], start: int, deadline: float, tally: Tally
) -> None:
    i = start
    reader = writer = None
    while time.perf_counter() < deadline:
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(spec["host"], spec["port"])
            assert reader is not None
            request = requests[i % len(requests)]
            i += 1
            t0 = time.perf_counter()
            writer.write(request)
            async with asyncio.timeout(spec["timeout"]):
                status = await _read_response(reader)
            tally.latencies.append(time.perf_counter() - t0)
            if not 200 <= status < 300:
                tally.non_2xx += 1
        except TimeoutError:
            tally.timeouts += 1
            writer = _close(writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            tally.errors += 1
            writer = _close(writer)
    _close(writer)


def _close(writer: asyncio.StreamWriter | None) -> None:
    if writer is not None:
        writer.close()


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    requests = build_requests(spec)
    tally = Tally()
    started = time.perf_counter()
    deadline = started + spec["duration"]
    stride = max(1, len(requests) // spec["connections"])
    await asyncio.gather(
        *(
            _connection(spec, requests, c * stride, deadline, tally)
            for c in range(spec["connections"])
        )
    )
    elapsed = time.perf_counter() - started
    lat = sorted(tally.latencies)
    return {
        "requests": len(lat),
        "seconds": elapsed,
        "rps": len(lat) / elapsed,
        "p50_ms": _percentile(lat, 50) * 1000,
        "p99_ms": _percentile(lat, 99) * 1000,
        "non_2xx": tally.non_2xx,
        "errors": tally.errors + tally.timeouts,
        "timeouts": tally.timeouts,
    }


def main() -> None:
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(run(spec))
    else:
        result = uvloop.run(run(spec))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
