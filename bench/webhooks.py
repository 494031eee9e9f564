"""Webhook delivery benchmark: our outbox deliverer against a bare httpx loop, in one run.

Why this shape: absolute req/s on our machines swing from run to run, so the throughput target
is a *ratio* to a baseline measured in the same run against the same receiver: a bare
``httpx.AsyncClient`` POST loop with the deliverer's concurrency (16 in flight), client
settings, body size and header count. Whatever that loop reaches is what the HTTP side alone
allows; everything we do on top (outbox fan-out, claims, leases, signing, the attempt log,
the scheduler's ticks) must cost at most half of it. Latency is judged in absolute terms
because it is what a receiver sees: an event must reach it within 2 s (p99) with the default
``SIGNBOT_JOBS_INTERVAL_SECONDS=1``.

Every actor is its own process, so no one measures itself:

* the receiver — a raw ASGI app under uvicorn (``bench/webhooks.py receiver``) that answers
  200 and notes the arrival time, path, header count and body of each request;
* the baseline client (``bench/webhooks.py bare``), on the event loop ``signbot serve`` runs
  on (``bot.cli.SERVE_OPTIONS["loop"]``: asyncio and uvloop differ by tens of percent here);
* our server exactly as users run it: ``python -m bot serve`` with ``SIGNBOT_DATA_DIR`` in a
  temp dir, ``SIGNBOT_WEBHOOK_ALLOW_PRIVATE=1`` (the receiver is on loopback) and the default
  1 s job interval.

Phases: warm-up (one envelope created through the API; its delivered body is the template of
every later body), baseline, throughput (N ``OutboxEvent`` rows committed in one transaction
with ``bot.jobs.outbox.emit`` — isolates delivery from the API — measured from first to last
receipt, waiting at most 60 s), paced latency (5 envelopes/s for 20 s through
``POST /envelopes``, each emitting ``envelope.created``; latency = receipt time - the body's
``occurred_at``).

Usage::

    .venv/bin/python bench/webhooks.py [--events 2000] [--rate 5] [--paced-seconds 20]
        [--database-url postgresql://postgres@127.0.0.1:5432/test] [--profile DIR] [--keep]

Exit status 0 when every target passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import importlib.util
import json
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    API,
    ENTRY_FILES,
    FRAME,
    clean_env,
    create_database,
    drop_databases,
    package_of,
    pdf,
    pg_admin,
    serve,
)

#: The deliverer's figures (bot/webhooks/delivery.py), mirrored by the baseline client.
CONCURRENCY = 16
MAX_CONNECTIONS = CONCURRENCY * 2
#: Headers the deliverer sets itself: Content-Type, User-Agent and the four signature headers.
#: httpx adds the same Host/Accept/Accept-Encoding/Connection/Content-Length to both.
DELIVERY_HEADERS = 6
THROUGHPUT_TARGET = 0.5
LATENCY_P99_TARGET_S = 2.0


# ------------------------------------------------------------------------------------ receiver


class Receiver:
    """The webhook receiver: answers 200 at once and remembers what arrived, when.

    Raw ASGI (no framework) so that it costs as little as possible per request: the benchmark
    must measure the senders, not the receiver. Parsing bodies is deferred to ``/_stats``.
    The arrival time is taken once the whole body is in, as a real receiver would see it.
    """

    def __init__(self) -> None:
        self.records: list[tuple[float, str, int, bytes]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        now = time.time()
        path = scope["path"]
        answer = b"ok"
        if path == "/_stats":
            answer = self.stats(parse_qs(scope["query_string"].decode()))
        elif path == "/_reset":
            self.records.clear()
        elif path != "/healthz":
            self.records.append((now, path, len(scope["headers"]), body))
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(answer)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": answer})

    def stats(self, query: dict[str, list[str]]) -> bytes:
        """``?path=/hook&count=1``: how many arrived; without ``count``, one row per request."""
        path = query.get("path", ["/hook"])[0]
        rows = [r for r in self.records if r[1] == path]
        if query.get("count"):
            return json.dumps({"count": len(rows)}).encode()
        out = []
        for at, _, n_headers, body in rows:
            row: dict[str, Any] = {"at": at, "headers": n_headers, "bytes": len(body)}
            if path == "/hook":
                with suppress(ValueError):
                    doc = json.loads(body)
                    row.update(
                        id=doc.get("id"),
                        occurred_at=doc.get("occurred_at"),
                        envelope_id=doc.get("envelope_id"),
                        event=doc.get("event"),
                        body=body.decode() if len(out) == 0 else None,
                    )
            out.append(row)
        return json.dumps(out).encode()


def run_receiver(port: int) -> None:
    import uvicorn

    uvicorn.run(Receiver(), host="127.0.0.1", port=port, log_level="warning", access_log=False)


# ------------------------------------------------------------------------------------ baseline


async def _bare(url: str, total: int, warmup: int, body_bytes: int) -> dict[str, Any]:
    """``total`` POSTs to ``url``, 16 in flight, after ``warmup`` to ``/warm`` (not counted).

    The client is built like the deliverer's and the headers have the deliverer's names and
    value sizes, precomputed: the bare loop signs nothing and touches no database.
    """
    body = b'{"pad":"' + b"x" * max(0, body_bytes - 10) + b'"}'
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "signbot-webhooks/1",
        "X-Certyneo-Signature": "0" * 64,
        "webhook-id": "evt_" + "0" * 26,
        "webhook-timestamp": str(int(time.time())),
        "webhook-signature": "v1," + "A" * 43 + "=",
    }
    assert len(headers) == DELIVERY_HEADERS
    base = url.rsplit("/", 1)[0]
    errors = 0
    async with httpx.AsyncClient(
        follow_redirects=False, limits=httpx.Limits(max_connections=MAX_CONNECTIONS)
    ) as client:

        async def loop(target: str, count: int) -> None:
            nonlocal errors
            left = count

            async def worker() -> None:
                nonlocal left, errors
                while left > 0:
                    left -= 1
                    try:
                        answer = await client.post(
                            target, content=body, headers=headers, timeout=10
                        )
                        if not 200 <= answer.status_code < 300:
                            errors += 1
                    except httpx.HTTPError:
                        errors += 1

            await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))

        await loop(f"{base}/warm", warmup)
        errors = 0
        started = time.perf_counter()
        await loop(url, total)
        elapsed = time.perf_counter() - started
    return {"client_rps": total / elapsed, "errors": errors, "body_bytes": len(body)}


def run_bare(args: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="webhooks.py bare")
    parser.add_argument("--url", required=True)
    parser.add_argument("--requests", type=int, required=True)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--body-bytes", type=int, required=True)
    parser.add_argument("--loop", default="auto", help="uvicorn's loop option of our server")
    ns = parser.parse_args(args)
    coro = _bare(ns.url, ns.requests, ns.warmup, ns.body_bytes)
    uvloop: Any = None
    if ns.loop in ("auto", "uvloop"):  # what uvicorn picks for these values
        with suppress(ImportError):
            import uvloop
    if uvloop is not None:
        result = uvloop.run(coro)
        result["loop"] = "uvloop"
    else:
        result = asyncio.run(coro)
        result["loop"] = "asyncio"
    print(json.dumps(result))


def server_loop() -> str:
    """The event loop option ``signbot serve`` passes to uvicorn, so the baseline runs on the
    same loop as our deliverer (uvloop and asyncio differ by tens of percent here)."""
    from bot import cli

    options = getattr(cli, "SERVE_OPTIONS", {})
    return str(options.get("loop", "auto"))


# ------------------------------------------------------------------------------------ databases


class ThrowawayDatabase:
    """Where our server keeps its data: SQLite in the temp dir (default), or a fresh
    PostgreSQL database created on the given server and dropped at the end."""

    def __init__(self, tmp: Path, pg_url: str | None) -> None:
        self._admin: Any = None
        self.name: str | None = None
        if not pg_url:
            self.url = f"sqlite:///{(tmp / 'signbot-data' / 'signbot.db').resolve()}"
            self.kind = "sqlite"
            return
        base, self._admin = pg_admin(pg_url)
        self.name = f"signbot_bench_webhooks_{uuid.uuid4().hex[:8]}"
        self.url = create_database(self._admin, base, self.name)
        self.kind = "postgresql"

    def drop(self) -> None:
        if self._admin is None or self.name is None:
            return
        drop_databases(self._admin, [self.name])


# ------------------------------------------------------------------------------------ our app


@dataclass
class Tenant:
    account_id: str
    environment: str
    setup_key: str
    paced_keys: list[str]


def prepare_signbot(database_url: str, n_paced_keys: int) -> Tenant:
    """Migrate the database and create the account and keys before the server starts (the
    same way ``signbot accounts``/``keys`` would, without a process per command)."""
    from bot import migrations
    from bot.accounts import service as accounts
    from bot.db import Database

    db = Database(database_url)
    migrations.upgrade(db)

    def work(session: Any) -> Tenant:
        account = accounts.create_account(session, "bench-webhooks")

        def key(name: str) -> str:
            return f"Bearer {accounts.create_key(session, account.id, 'test', name).secret}"

        return Tenant(
            account.id, "test", key("setup"), [key(f"paced-{i}") for i in range(n_paced_keys)]
        )

    try:
        return db.run_sync(work)
    finally:
        db.dispose()


def envelope_body(document_id: str, n: int) -> dict[str, Any]:
    return {
        "subject": f"Contrat de prestation {n}",
        "documentIds": [document_id],
        "recipients": [{"email": "client@example.com", "name": "Marie Dubois", "role": "SIGNER"}],
    }


def emit_events(database_url: str, tenant: Tenant, template: dict[str, Any], n: int) -> float:
    """Commit ``n`` outbox events in one transaction; returns the wall time of the commit."""
    from bot.db import Database
    from bot.jobs.outbox import emit

    db = Database(database_url)

    def work(session: Any) -> None:
        for i in range(n):
            emit(
                session,
                account_id=tenant.account_id,
                environment=tenant.environment,
                event=template["event"],
                envelope_id=f"{template.get('envelope_id') or 'env'}_{i}"[:40],
                data=template["data"],
            )

    try:
        db.run_sync(work)
        return time.time()
    finally:
        db.dispose()


def delivery_summary(database_url: str) -> dict[str, int]:
    """Deliveries by status, and attempts that did not get a 2xx, from our database."""
    from sqlalchemy import text

    from bot.db import Database

    db = Database(database_url)
    try:
        with db.engine.connect() as conn:
            out = dict(
                conn.execute(
                    text("SELECT status, count(*) FROM webhook_deliveries GROUP BY status")
                ).all()
            )
            out["failed attempts"] = conn.execute(
                text(
                    "SELECT count(*) FROM webhook_attempts WHERE status_code IS NULL "
                    "OR status_code < 200 OR status_code >= 300"
                )
            ).scalar_one()
        return out
    finally:
        db.dispose()


# ------------------------------------------------------------------------------------ receiver io


def receiver_rows(receiver: str, path: str) -> list[dict[str, Any]]:
    return httpx.get(f"{receiver}/_stats", params={"path": path}, timeout=30).json()


def receiver_count(receiver: str, path: str) -> int:
    answer = httpx.get(f"{receiver}/_stats", params={"path": path, "count": 1}, timeout=10)
    return int(answer.json()["count"])


def receiver_reset(receiver: str) -> None:
    httpx.post(f"{receiver}/_reset", timeout=10).raise_for_status()


def wait_for(receiver: str, n: int, timeout: float, path: str = "/hook") -> bool:
    """Poll the receiver until ``n`` requests arrived on ``path``; False on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if receiver_count(receiver, path) >= n:
            return True
        time.sleep(0.1)
    return receiver_count(receiver, path) >= n


def parse_iso(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def rate(rows: list[dict[str, Any]]) -> float:
    """Requests per second from first to last arrival."""
    if len(rows) < 2:
        return 0.0
    times = sorted(r["at"] for r in rows)
    return (len(times) - 1) / max(times[-1] - times[0], 1e-9)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation: p99 of 100 values is the 99th)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


# ------------------------------------------------------------------------------------ profile


def start_profile(pid: int, out: Path) -> subprocess.Popen[bytes] | None:
    """py-spy on our server, all threads, idle included, until :func:`stop_profile`.

    Idle samples are kept because on PostgreSQL the work waits on the network in worker
    threads and, on either database, the event loop may sit idle between passes: wall time,
    not CPU alone, answers "where does a delivery's time go"."""
    py_spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if py_spy is None:
        print("  (no py-spy: .venv/bin/pip install py-spy to profile)")
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [
            py_spy,
            "record",
            "--pid",
            str(pid),
            "--rate",
            "200",
            "--idle",
            "--threads",
            "--format",
            "raw",
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    time.sleep(1.0)  # let py-spy attach before the load starts
    return proc


def stop_profile(proc: subprocess.Popen[bytes], out: Path) -> bool:
    """Stop py-spy as Ctrl-C would (it then writes what it has); True when it did."""
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return False
    if not out.exists():
        print(f"  py-spy failed: {err.decode(errors='replace')[-400:]}")
        return False
    return True


def summarize_profile(path: Path, top: int = 16) -> str:
    """Where our server's wall time went, from py-spy's raw stacks (``--idle --threads``).

    * the event loop's thread: the share of samples it was busy (not waiting in its poller);
    * over all threads, busy samples attributed to our functions (inclusive) and to the
      innermost line of ours with the package the sample ended in. Threads parked with no
      frame of ours (idle pool threads, the idle loop) are left out.
    """
    inclusive: collections.Counter[str] = collections.Counter()
    innermost: collections.Counter[str] = collections.Counter()
    loop_total = loop_busy = total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [m for m in map(FRAME.match, stack.split(";")) if m]
        if not frames:
            continue
        if any(m["func"] == "Runner.run" for m in frames):
            loop_total += count
            if not _loop_idle(frames[-1]):
                loop_busy += count
        ours = [m for m in frames if m["file"].startswith("bot/")]
        ours = [m for m in ours if m["file"] not in ENTRY_FILES]
        if not ours:
            continue
        total += count
        for name in {f"{m['func']} ({m['file']}:{m['line']})" for m in ours}:
            inclusive[name] += count
        inner = ours[-1]
        leaf = package_of(frames[-1]["file"])
        innermost[f"{inner['func']} ({inner['file']}:{inner['line']}) -> {leaf}"] += count
    if not total:
        return "  (no busy samples)"

    def rows(counter: collections.Counter[str]) -> list[str]:
        return [f"    {100 * c / total:5.1f}%  {n}" for n, c in counter.most_common(top)]

    busy = 100 * loop_busy / loop_total if loop_total else float("nan")
    return "\n".join(
        [
            f"  event loop busy {busy:.0f} % of the phase ({loop_busy}/{loop_total} samples)",
            f"  {total} samples in code of ours (all threads; shares below are of these):",
            "  our functions, inclusive:",
            *rows(inclusive),
            "  innermost line of ours -> package the sample ended in:",
            *rows(innermost),
        ]
    )


def _loop_idle(leaf: re.Match[str]) -> bool:
    """The loop waits for I/O: uvloop's poller is C code under ``Runner.run``; asyncio's is
    ``selectors``' ``select``."""
    return leaf["func"] == "Runner.run" or (
        leaf["file"] == "selectors.py" and leaf["func"].endswith(".select")
    )


# ------------------------------------------------------------------------------------ main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--events", type=int, default=2000, help="events in the throughput phase")
    parser.add_argument("--rate", type=float, default=5, help="envelopes/s in the paced phase")
    parser.add_argument("--paced-seconds", type=float, default=20)
    parser.add_argument(
        "--database-url",
        default=None,
        help="postgresql://... to run our server on PostgreSQL (a throwaway database is "
        "created there and dropped); default SQLite in a temp dir",
    )
    parser.add_argument(
        "--log-level", default="info", help="our server's log level (default: production's)"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="record py-spy stacks of our server during the throughput phase into DIR",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (server logs)")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="signbot-bench-webhooks-"))
    (tmp / "signbot-data").mkdir()
    db = ThrowawayDatabase(tmp, args.database_url)
    me = [sys.executable, str(Path(__file__).resolve())]
    n_paced = max(1, round(args.rate * args.paced_seconds))
    print(
        f"signbot webhook bench: {args.events} events (throughput), {n_paced} envelopes at "
        f"{args.rate:g}/s (latency), {db.kind}, {os.cpu_count()} CPUs, "
        f"{CONCURRENCY} in flight, job interval 1 s"
    )
    figures: dict[str, Any] = {}
    notes: list[str] = []
    load = os.getloadavg()[0]
    if load > 0.5 * (os.cpu_count() or 1):
        print(
            f"WARNING: load average {load:.2f} on {os.cpu_count()} CPUs: other processes "
            "compete with the bench, and the phases do not all see the same competition"
        )
    if importlib.util.find_spec("sniffio") is None:
        print(
            "WARNING: sniffio is not installed: httpcore retries `import sniffio` (a scan of "
            "sys.path) on every connection-pool operation, ~20 % of httpx's CPU; the baseline "
            "and our deliverer both pay it"
        )
    profile_out: Path | None = None
    try:
        # a key's budget is 200 + 100/min: 150 requests per key leaves a margin
        tenant = prepare_signbot(db.url, max(1, math.ceil(n_paced / 150)))
        env = {
            "SIGNBOT_DATA_DIR": str(tmp / "signbot-data"),
            "SIGNBOT_WEBHOOK_ALLOW_PRIVATE": "1",
            "SIGNBOT_JOBS_INTERVAL_SECONDS": "1",
            "SIGNBOT_LOG_LEVEL": args.log_level,
        }
        if args.database_url:
            env["SIGNBOT_DATABASE_URL"] = db.url
        with (
            serve("receiver", [*me, "receiver"], tmp) as receiver,
            serve("signbot", [sys.executable, "-m", "bot", "serve"], tmp, env) as ours,
        ):
            hook = f"{receiver.base_url}/hook"
            api = httpx.Client(
                base_url=ours.base_url + API,
                headers={"Authorization": tenant.setup_key},
                timeout=30,
            )
            # ---- warm-up: one real event end to end; its body is the template for the rest
            doc = api.post("/documents", files={"file": ("c.pdf", pdf(), "application/pdf")})
            doc.raise_for_status()
            document_id = doc.json()["id"]
            api.post("/webhooks", json={"url": hook, "events": ["*"]}).raise_for_status()
            api.post("/envelopes", json=envelope_body(document_id, 0)).raise_for_status()
            if not wait_for(receiver.base_url, 1, 15):
                raise RuntimeError(f"the warm-up event never arrived; see {ours.log_path}")
            first = receiver_rows(receiver.base_url, "/hook")[0]
            template = json.loads(first["body"])
            body_bytes, hook_headers = first["bytes"], first["headers"]
            print(f"warm-up delivered: {body_bytes}-byte body, {hook_headers} request headers")

            # ---- baseline: bare httpx loop, same receiver
            done = subprocess.run(
                [
                    *me,
                    "bare",
                    "--url",
                    f"{receiver.base_url}/bare",
                    "--requests",
                    str(args.events),
                    "--body-bytes",
                    str(body_bytes),
                    "--loop",
                    server_loop(),
                ],
                capture_output=True,
                text=True,
                check=True,
                env=clean_env(),
            )
            bare = json.loads(done.stdout)
            bare_rows = receiver_rows(receiver.base_url, "/bare")
            figures["bare"] = {
                "rps": rate(bare_rows),
                "client_rps": bare["client_rps"],
                "n": len(bare_rows),
                "errors": bare["errors"],
                "headers": bare_rows[0]["headers"] if bare_rows else 0,
                "bytes": bare_rows[0]["bytes"] if bare_rows else 0,
                "loop": bare["loop"],
            }
            print(f"baseline: {figures['bare']['rps']:.0f} req/s ({bare['loop']})")

            # ---- throughput: N events committed at once, delivered by our worker
            receiver_reset(receiver.base_url)
            time.sleep(1.2)  # let a tick pass so the batch lands on an idle worker
            budget = 60.0  # keeps a slow run within ~2 min; what did not arrive is reported
            recorder = None
            if args.profile:
                profile_out = args.profile / f"throughput-{db.kind}.txt"
                recorder = start_profile(ours.proc.pid, profile_out)
            committed = emit_events(db.url, tenant, template, args.events)
            complete = wait_for(receiver.base_url, args.events, budget)
            if recorder and profile_out and not stop_profile(recorder, profile_out):
                profile_out = None
            rows = receiver_rows(receiver.base_url, "/hook")
            ids = [r["id"] for r in rows]
            times = sorted(r["at"] for r in rows)
            per_second = collections.Counter(int(t - times[0]) for t in times) if times else {}
            figures["ours"] = {
                "rps": rate(rows),
                "n": len(set(ids)),
                "duplicates": len(ids) - len(set(ids)),
                "complete": complete,
                "to_first": (times[0] - committed) if times else float("nan"),
                "to_last": (times[-1] - committed) if times else float("nan"),
                "per_second": [per_second.get(s, 0) for s in range(int(max(per_second) + 1))]
                if per_second
                else [],
                "headers": rows[0]["headers"] if rows else 0,
                "bytes": statistics.median(r["bytes"] for r in rows) if rows else 0,
            }
            print(f"ours:     {figures['ours']['rps']:.0f} deliveries/s")

            # ---- paced latency: envelopes created through the API at a steady rate
            receiver_reset(receiver.base_url)
            time.sleep(1.2)
            envelope_ids: set[str] = set()
            clients = [
                httpx.Client(base_url=ours.base_url + API, headers={"Authorization": k})
                for k in tenant.paced_keys
            ]
            lag = 0.0
            t0 = time.monotonic()
            for i in range(n_paced):
                due = t0 + i / args.rate
                pause = due - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                else:
                    lag = max(lag, -pause)
                answer = clients[i % len(clients)].post(
                    "/envelopes", json=envelope_body(document_id, i + 1)
                )
                answer.raise_for_status()
                envelope_ids.add(answer.json()["id"])
            for client in clients:
                client.close()
            if lag > 0.1:
                notes.append(f"the paced client fell behind its schedule by up to {lag:.2f} s")
            wait_for(receiver.base_url, n_paced, 15)
            rows = [
                r
                for r in receiver_rows(receiver.base_url, "/hook")
                if r.get("envelope_id") in envelope_ids and r.get("event") == "envelope.created"
            ]
            latencies = [r["at"] - parse_iso(r["occurred_at"]) for r in rows]
            figures["paced"] = {
                "n": len({r["envelope_id"] for r in rows}),
                "expected": n_paced,
                "p50": percentile(latencies, 50) if latencies else float("nan"),
                "p99": percentile(latencies, 99) if latencies else float("nan"),
                "max": max(latencies) if latencies else float("nan"),
            }
            api.close()
            figures["db"] = delivery_summary(db.url)
    finally:
        db.drop()
        if args.keep:
            print(f"logs and data kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    return report(args, figures, notes, profile_out)


def report(
    args: argparse.Namespace,
    figures: dict[str, Any],
    notes: list[str],
    profile_out: Path | None,
) -> int:
    bare, ours, paced = figures["bare"], figures["ours"], figures["paced"]
    print()
    print(f"{'':<44} {'req/s':>9} {'requests':>9} {'headers':>8} {'body B':>7}")
    print(
        f"{'bare httpx loop (' + str(CONCURRENCY) + ' in flight)':<44} {bare['rps']:>9.0f} "
        f"{bare['n']:>9} {bare['headers']:>8} {bare['bytes']:>7}"
    )
    print(
        f"{'ours: outbox -> deliveries (first..last)':<44} {ours['rps']:>9.0f} "
        f"{ours['n']:>9} {ours['headers']:>8} {ours['bytes']:>7.0f}"
    )
    print(
        f"\nthroughput phase: commit -> first receipt {ours['to_first']:.2f} s, "
        f"-> last {ours['to_last']:.2f} s; duplicates {ours['duplicates']}"
    )
    print(f"  receipts per second since the first: {' '.join(map(str, ours['per_second']))}")
    print(
        f"paced phase: {paced['n']}/{paced['expected']} delivered; event -> delivery "
        f"p50 {paced['p50'] * 1000:.0f} ms, p99 {paced['p99'] * 1000:.0f} ms, "
        f"max {paced['max'] * 1000:.0f} ms"
    )
    print(f"database: {', '.join(f'{k} {v}' for k, v in sorted(figures['db'].items()))}")
    if bare["errors"]:
        notes.append(f"the bare loop had {bare['errors']} errors")
    if bare["headers"] != ours["headers"]:
        notes.append(f"header counts differ: bare {bare['headers']}, ours {ours['headers']}")
    for note in notes:
        print(f"note: {note}")

    ratio = ours["rps"] / bare["rps"] if bare["rps"] else 0.0
    checks = [
        (
            "deliveries/s / bare httpx loop",
            f"{100 * ratio:.0f} %",
            f">= {100 * THROUGHPUT_TARGET:.0f} %",
            ratio >= THROUGHPUT_TARGET and ours["complete"] and ours["duplicates"] == 0,
        ),
        (
            "event -> delivery p99 (paced)",
            f"{paced['p99']:.2f} s",
            f"< {LATENCY_P99_TARGET_S:g} s",
            paced["n"] == paced["expected"] and paced["p99"] < LATENCY_P99_TARGET_S,
        ),
    ]
    if not ours["complete"]:
        print(f"note: only {ours['n']} of {args.events} events arrived in time")
    print("\ntargets")
    passed_all = True
    for what, measured, needed, passed in checks:
        passed_all &= passed
        print(f"  {what:<34} {measured:>8}   need {needed:<8} {'PASS' if passed else 'FAIL'}")
    if profile_out is not None and profile_out.exists():
        print(f"\nprofile of our server during the throughput phase ({profile_out}):")
        print(summarize_profile(profile_out))
    return 0 if passed_all else 1


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "receiver":
        port_at = sys.argv.index("--port") + 1
        run_receiver(int(sys.argv[port_at]))
    elif len(sys.argv) > 1 and sys.argv[1] == "bare":
        run_bare(sys.argv[2:])
    else:
        sys.exit(main())
