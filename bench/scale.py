"""Scale benchmark: API throughput with one and two replicas, and the reminder scans' cost.

Two questions about running past one machine (DESIGN.md, "How it runs"), answered in one run:

1. **Does a second replica add throughput?** ``signbot serve --role api`` processes (started
   as ``bench/api.py`` starts ours: ``python -m bot serve``, ``bot/cli.py``'s uvicorn options)
   share one throwaway PostgreSQL database and, when Redis answers, one rate limiter
   (``SIGNBOT_REDIS_URL``; otherwise each replica limits on its own and the output says so).
   ``bench/api.py``'s read (``GET /api/v1/envelopes/{id}``) and create (``POST
   /api/v1/envelopes``, one uploaded document) are measured against one replica, then against
   two, with the same load generator both times: one ``wrk`` process whose threads are pinned
   round-robin to the replicas (``thread.addr``), so wrk merges the latency of both. Printed:
   req/s, p50, p99 and the ratio two replicas / one. There is no target for that ratio: on a
   small machine the load generator, both replicas, PostgreSQL and Redis share the same cores,
   so the CPU use of each during the measurement is printed next to it. Non-2xx responses or
   socket errors mark a figure as invalid.

2. **Is the reminder scan's cost set by the rows due, not by the table?** The two jobs that
   claim due reminders, ``bot.envelopes.reminders.remind_due`` (table ``envelopes``) and
   ``bot.slack.reminders.claim`` (table ``slack_requests``), each select ``next_reminder_at <=
   now ORDER BY next_reminder_at LIMIT 100 FOR UPDATE SKIP LOCKED``. Two throwaway databases,
   migrated to head, hold 10,000 and ``--rows`` (1,000,000) pending rows whose reminder is in
   the future, plus the same 50 due rows (with a waiting signer each), inserted with ``INSERT
   ... SELECT ... FROM generate_series`` and ANALYZEd. The jobs' SELECT runs alternately on the
   two databases, each time in a transaction that is rolled back (no side effect). Target:
   median(large) / median(small) <= 1.5 for both tables, and ``EXPLAIN`` at the large size must
   show an Index Scan on the due-time index. Finally each real job function runs once on each
   database (rolled back) to show it claims the 50 due rows, and the SQL it sent is compared
   with the timed statement.

Usage::

    .venv/bin/python bench/scale.py [--database-url postgresql://postgres@127.0.0.1:5432/test]
        [--duration 10] [--connections 32] [--rows 1000000] [--skip-throughput] [--skip-scan]

Exit status 1 when a scan target fails (or its plan is not the index scan), else 0.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from api import (
    REQUESTS_PER_KEY,
    Load,
    Result,
    create_body,
    expect_status,
    lua_script,
    parse_wrk,
    prepare_signbot,
    signbot_fixtures,
)
from common import API, BENCH_DIR, Server, create_database, drop_databases, pg_admin, serve

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/14"
#: Rows whose reminder is due in every scan database (the job's batch is 100: one batch).
DUE = 50
SMALL = 10_000
SCAN_TARGET = 1.5


# ==================================================================================== CPU use


def _cpu_seconds(pid: int) -> float:
    """utime + stime of one process (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    total = sum(ticks[:8])  # guest time is already counted in user
    hz = os.sysconf("SC_CLK_TCK")
    return (total - idle) / hz, total / hz


#: Process names whose CPU is shown as the database's and the limiter's (``comm`` in /proc).
SERVICES = ("postgres", "redis-server")


def _services_cpu() -> dict[int, float]:
    """CPU seconds of every PostgreSQL and Redis process, by pid (read-only look at /proc)."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        if raw[raw.find("(") + 1 : raw.rfind(")")] in SERVICES:
            fields = raw.rsplit(")", 1)[1].split()
            out[int(entry.name)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def busy_elsewhere(seconds: float = 2.0) -> float:
    """Cores the machine spends on other work while we wait (before any load of ours)."""
    busy, total = _machine_busy()
    time.sleep(seconds)
    busy2, total2 = _machine_busy()
    return (busy2 - busy) / max(total2 - total, 1e-9) * (os.cpu_count() or 1)


@dataclass
class CpuUse:
    """CPU used during one measurement, in cores (1.0 = one core busy throughout)."""

    loadgen: float
    replicas: list[float]
    services: float
    """PostgreSQL (every backend, not only ours) and Redis."""
    machine: float

    @property
    def other(self) -> float:
        """Whatever else runs on the machine."""
        return max(0.0, self.machine - self.loadgen - sum(self.replicas) - self.services)


@contextmanager
def cpu_meter(replica_pids: list[int]) -> Iterator[list[CpuUse]]:
    """Measure CPU use over the block; the load generator must be a child that is waited for
    inside it (``RUSAGE_CHILDREN`` counts only children already reaped)."""
    out: list[CpuUse] = []
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    procs = [_cpu_seconds(p) for p in replica_pids]
    services = _services_cpu()
    busy, total = _machine_busy()
    t0 = time.perf_counter()
    yield out
    wall = time.perf_counter() - t0
    kids2 = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy2, total2 = _machine_busy()
    cores = os.cpu_count() or 1
    gen = (kids2.ru_utime + kids2.ru_stime - kids.ru_utime - kids.ru_stime) / wall
    reps = [(_cpu_seconds(p) - c) / wall for p, c in zip(replica_pids, procs, strict=True)]
    services2 = _services_cpu()
    svc = sum(t - services.get(pid, 0.0) for pid, t in services2.items()) / wall
    machine = (busy2 - busy) / max(total2 - total, 1e-9) * cores
    out.append(CpuUse(gen, reps, svc, machine))


# ==================================================================================== throughput


@dataclass(kw_only=True)
class Figures(Result):
    """One figure of the API bench's (``name`` is the target: read or create), run on
    ``replicas`` replicas, with their CPU use."""

    replicas: int
    cpu: CpuUse


ADDR_HOOK = "function setup(thread)\n"


def round_robin_script(load: Load, threads: int, ports: list[int]) -> str:
    """``bench/api.py``'s wrk script, with thread *i* pinned to replica *i mod n*."""
    script = lua_script(load, threads)
    if ADDR_HOOK not in script:
        raise RuntimeError("bench/api.py's Lua template changed: no setup(thread) to hook")
    addrs = ", ".join(f'wrk.lookup("127.0.0.1", "{p}")[1]' for p in ports)
    return script.replace(
        ADDR_HOOK,
        f"local addrs = {{ {addrs} }}\n\n{ADDR_HOOK}"
        "  thread.addr = addrs[(started % #addrs) + 1]\n",
        1,
    )


class RoundRobin:
    """Load over one or more replicas, from one client process (wrk) or, without wrk, from
    ``bench/loadgen.py`` processes (one per thread slot, each on one replica)."""

    def __init__(self, args: argparse.Namespace, work_dir: Path) -> None:
        self.args = args
        self.work_dir = work_dir
        self.wrk = shutil.which("wrk")
        self._n = 0

    def threads(self, replicas: int) -> int:
        """Same thread count for every phase (so the client costs the same), >= replicas."""
        return max(self.args.threads, replicas)

    @property
    def description(self) -> str:
        if self.wrk:
            return f"one wrk -t{self.args.threads} -c{self.args.connections} --latency"
        return f"bench/loadgen.py x{self.args.threads} (Python), {self.args.connections} conns"

    def run(self, servers: list[Server], load: Load, seconds: float) -> dict[str, Any]:
        self._n += 1
        ports = [int(s.base_url.rsplit(":", 1)[1]) for s in servers]
        threads = self.threads(len(servers))
        if self.wrk:
            script = self.work_dir / f"scale{self._n}.lua"
            script.write_text(round_robin_script(load, threads, ports))
            command = [
                self.wrk,
                f"-t{threads}",
                f"-c{self.args.connections}",
                f"-d{max(1, round(seconds))}s",
                f"--timeout={self.args.timeout}s",
                "--latency",
                "-s",
                str(script),
                servers[0].base_url,
            ]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            return parse_wrk(done.stdout)
        return self._loadgen(ports, threads, load, seconds)

    def _loadgen(self, ports: list[int], slots: int, load: Load, seconds: float) -> dict[str, Any]:
        procs = []
        for i in range(slots):
            spec = {
                "host": "127.0.0.1",
                "port": ports[i % len(ports)],
                "duration": seconds,
                "connections": max(1, self.args.connections // slots),
                "timeout": self.args.timeout,
                "requests": load.http_requests()[i::slots] or load.http_requests(),
            }
            path = self.work_dir / f"scale{self._n}-{i}.json"
            path.write_text(json.dumps(spec))
            procs.append(
                subprocess.Popen(
                    [sys.executable, str(BENCH_DIR / "loadgen.py"), str(path)],
                    stdout=subprocess.PIPE,
                    text=True,
                )
            )
        parts = [json.loads(p.communicate(timeout=seconds + 60)[0]) for p in procs]
        n = sum(p["requests"] for p in parts) or 1
        return {
            "rps": sum(p["rps"] for p in parts),
            # percentiles of separate clients cannot be merged exactly: request-weighted mean
            "p50_ms": sum(p["p50_ms"] * p["requests"] for p in parts) / n,
            "p99_ms": sum(p["p99_ms"] * p["requests"] for p in parts) / n,
            "requests": sum(p["requests"] for p in parts),
            "non_2xx": sum(p["non_2xx"] for p in parts),
            "errors": sum(p["errors"] for p in parts),
            "timeouts": sum(p["timeouts"] for p in parts),
        }

    def measure(self, target: str, servers: list[Server], load: Load) -> Figures:
        self.run(servers, load, self.args.warmup)
        with cpu_meter([s.proc.pid for s in servers]) as cpu:
            figures = self.run(servers, load, self.args.duration)
        result = Figures(
            name=target,
            replicas=len(servers),
            rps=figures["rps"],
            p50_ms=figures["p50_ms"],
            p99_ms=figures["p99_ms"],
            non_2xx=figures["non_2xx"],
            errors=figures["errors"],
            requests=figures["requests"],
            cpu=cpu[0],
        )
        if figures.get("timeouts"):
            result.notes.append(f"{figures['timeouts']} requests timed out")
        print(format_figures(result), flush=True)
        return result


THROUGHPUT_HEADER = (
    f"{'target':<8} {'replicas':>8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} "
    f"{'errors':>7}   CPU cores: {'client':>6} {'replicas':>11} {'pg+redis':>8} {'other':>6} "
    f"{'machine':>7}   replica CPU ms/req"
)


def format_figures(f: Figures) -> str:
    reps = "+".join(f"{c:.2f}" for c in f.cpu.replicas)
    return (
        f"{f.name:<8} {f.replicas:>8} {f.rps:>8.0f} {f.p50_ms:>8.1f} {f.p99_ms:>8.1f} "
        f"{f.non_2xx:>8} {f.errors:>7}   {'':>10} {f.cpu.loadgen:>6.2f} {reps:>11} "
        f"{f.cpu.services:>8.2f} {f.cpu.other:>6.2f} {f.cpu.machine:>7.2f}   "
        f"{1e3 * sum(f.cpu.replicas) / max(f.rps, 1e-9):>18.1f}"
    )


def redis_reachable(url: str) -> str | None:
    """None when Redis answers PING at ``url``, else why not."""
    try:
        import redis
    except ImportError:
        return "the redis package is not installed"
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        client.ping()
        client.close()
    except Exception as exc:  # any failure means: run without it, and say so
        return str(exc) or type(exc).__name__
    return None


def log_problems(log_dir: Path) -> list[str]:
    """One line per replica log that holds ERROR or WARNING records: how many, and the first
    message (with the last line of its traceback). Replicas that disagree show up here."""
    out = []
    for log in sorted(log_dir.glob("replica-*.log")):
        bad = []
        for line in log.read_text(errors="replace").splitlines():
            with suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict) and record.get("level") in ("ERROR", "WARNING"):
                    bad.append(record)
        if bad:
            first = bad[0]
            raised = [  # "module.Error: message" lines of the traceback, not code or hints
                line
                for line in str(first.get("exc", "")).splitlines()
                if re.match(r"\w+(\.\w+)+: ", line)
            ]
            out.append(
                f"{log.stem}: {len(bad)} ERROR/WARNING log records; first: "
                f"{first.get('msg')!r} {raised[-1][:200] if raised else ''}"
            )
    return out


def throughput(args: argparse.Namespace, admin: Any, base: Any, created: list[str]) -> bool:
    """Measure read and create on one replica, then on two; True when every figure is valid."""
    tmp = Path(tempfile.mkdtemp(prefix="signbot-scale-"))
    gen = RoundRobin(args, tmp)
    redis_url = args.redis_url
    problem = redis_reachable(redis_url) if redis_url else "--redis-url is empty"
    # one budget of keys per (target, phase): a key that served a phase starts the next drained
    seconds = args.warmup + args.duration
    n_keys = max(20, math.ceil(args.max_rps * seconds / REQUESTS_PER_KEY))
    print(
        f"throughput: {gen.description}, {args.duration:g} s per figure after {args.warmup:g} s "
        f"warm-up, PostgreSQL, {n_keys} API keys per figure, {os.cpu_count()} CPUs"
    )
    if not gen.wrk:
        print(
            "WARNING: wrk is not installed (apt-get install wrk): Python load generator, the "
            "CLIENT MAY BE THE BOTTLENECK; p50/p99 are request-weighted means of its processes"
        )
    if problem:
        print(
            f"WARNING: Redis not reachable at {redis_url} ({problem}): each replica rate-limits "
            "on its own (memory limiter), unlike a real multi-replica deployment"
        )
        redis_url = None
    else:
        print(f"rate limiter: Redis at {redis_url}, shared by the replicas")
    cores = os.cpu_count() or 1
    print(
        f"NOTE: the client, every replica, PostgreSQL and Redis share these {cores} CPUs, so "
        "two replicas cannot reach 2x here;\n      the CPU columns show where the cores went "
        "(pg+redis: every PostgreSQL and Redis process; other: anything else running)."
    )
    idle = busy_elsewhere()
    if idle > 0.25:
        print(
            f"WARNING: before the run, other processes kept {idle:.2f} of {cores} cores busy: "
            "the figures below are depressed and noisy"
        )
    name = f"signbot_bench_{uuid.uuid4().hex[:8]}_scale_api"
    database_url = create_database(admin, base, name)
    created.append(name)
    keys = prepare_signbot(database_url, 2 * n_keys, 2 * n_keys)
    data_dir = tmp / "signbot-data"  # shared by the replicas (documents live in it)
    data_dir.mkdir()
    env = {
        "SIGNBOT_DATA_DIR": str(data_dir),
        "SIGNBOT_LOG_LEVEL": args.log_level,
        "SIGNBOT_DATABASE_URL": database_url,
        **({"SIGNBOT_REDIS_URL": redis_url} if redis_url else {}),
    }
    argv = [sys.executable, "-m", "bot", "serve", "--role", "api"]
    results: list[Figures] = []
    print()
    print(THROUGHPUT_HEADER)
    try:
        with serve("replica-1", argv, tmp, env) as first:
            document_id, envelope_id = signbot_fixtures(first.base_url, keys.setup)

            def loads(phase: int) -> tuple[Load, Load]:
                part = slice(phase * n_keys, (phase + 1) * n_keys)
                read = Load("GET", f"{API}/envelopes/{envelope_id}", keys.read[part])
                create = Load(
                    "POST",
                    f"{API}/envelopes",
                    keys.create[part],
                    create_body(document_id),
                    "application/json",
                )
                return read, create

            read, create = loads(0)
            expect_status(first.base_url, read, 200)
            results.append(gen.measure("read", [first], read))
            results.append(gen.measure("create", [first], create))
            # the second replica joins the first (started after it: no start-up race)
            with serve("replica-2", argv, tmp, env) as second:
                read, create = loads(1)
                expect_status(second.base_url, read, 200)
                results.append(gen.measure("read", [first, second], read))
                results.append(gen.measure("create", [first, second], create))
    except Exception:
        for log in sorted(tmp.glob("*.log")):
            print(f"--- {log.name} (tail)\n{log.read_text(errors='replace')[-2000:]}")
        raise
    finally:
        problems = log_problems(tmp)
        if args.keep:
            print(f"(server logs kept in {tmp})")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    for problem in problems:
        print(f"WARNING: {problem}")

    for r in results:
        for note in r.notes:
            print(f"note: {r.name} x{r.replicas}: {note}")
    valid = all(r.clean for r in results)
    print("\nratio 2 replicas / 1 replica (no target; see the NOTE on cores above):")
    for target in ("read", "create"):
        one, two = (r for r in results if r.name == target)
        flag = "" if one.clean and two.clean else "   INVALID: non-2xx responses or errors"
        print(
            f"  {target:<7} {two.rps / one.rps:5.2f}x req/s   "
            f"(p50 {one.p50_ms:.1f} -> {two.p50_ms:.1f} ms, "
            f"p99 {one.p99_ms:.1f} -> {two.p99_ms:.1f} ms){flag}"
        )
    return valid


# ==================================================================================== scan


def envelope_scan(now: datetime) -> Any:
    """The SELECT of ``bot.envelopes.reminders.remind_due``: the job's own query."""
    from bot.envelopes import reminders

    return reminders.due_query(now)


def slack_scan(now: datetime) -> Any:
    """The SELECT of ``bot.slack.reminders.claim``: the job's own query."""
    from bot.slack import reminders

    return reminders.due_query(now)


def run_remind_due(session: Any) -> str:
    from sqlmodel import col, func, select

    from bot.envelopes.reminders import remind_due
    from bot.jobs.models import Task

    handled = remind_due(session)
    session.flush()
    queued = session.exec(
        select(func.count()).select_from(Task).where(col(Task.kind) == "mail")
    ).one()
    return f"remind_due handled {handled} envelopes, queued {queued} reminder mails"


def run_claim(session: Any) -> str:
    from bot.slack.reminders import claim
    from bot.timeutil import utcnow

    claims = claim(session, utcnow())
    kinds = sorted({c.kind for c in claims})
    return f"claim returned {len(claims)} claims ({', '.join(kinds) or 'none'})"


@dataclass(frozen=True)
class Scan:
    name: str
    table: str
    index: str
    statement: Callable[[datetime], Any]
    job: Callable[[Any], str]


SCANS = (
    Scan("remind_due", "envelopes", "ix_envelopes_next_reminder_at", envelope_scan, run_remind_due),
    Scan("slack claim", "slack_requests", "ix_slack_requests_next_reminder", slack_scan, run_claim),
)

#: Every NOT NULL column is given (no reliance on defaults the model has but the table lacks).
FILL_ENVELOPES = """
INSERT INTO envelopes (id, account_id, environment, workspace_id, subject, message, status,
    signing_order, signature_level, category, tags, locale, initials_on_every_page, metadata,
    sent_at, reminder_interval_days, reminder_max_count, reminders_sent, next_reminder_at,
    created_at, updated_at)
SELECT {prefix} || lpad(g::text, 9, '0'), :account, 'test', :workspace, 'Contrat #' || g, '',
    'SENT', 'PARALLEL', 'SIMPLE', 'OTHER', '[]'::json, 'en', false, '{{}}'::json,
    now() - interval '1 day', 3, 3, 0, {due_at}, now(), now()
FROM generate_series(CAST(:lo AS integer), CAST(:hi AS integer)) AS g
"""
FILL_SLACK = """
INSERT INTO slack_requests (id, team_id, number, channel_id, message_ts, requester_id, subject,
    envelope_id, status, recipients, reminder_interval_days, reminder_max_count,
    reminders_sent, next_reminder_at, created_at, updated_at)
SELECT {prefix} || lpad(g::text, 9, '0'), 'T0BENCH', g, 'C0BENCH', '1700000000.' || g,
    'U0REQ', 'Contrat #' || g, 'env_remote_' || g, 'SENT',
    '[{{"name": "Marie", "email": "marie@example.com", "slack_user_id": "U0SIGN",
        "role": "SIGNER", "status": "SENT"}}]'::json,
    3, 3, 0, {due_at}, now(), now()
FROM generate_series(CAST(:lo AS integer), CAST(:hi AS integer)) AS g
"""
#: A waiting signer on each due envelope, so ``remind_due`` has someone to remind.
FILL_RECIPIENTS = """
INSERT INTO recipients (id, envelope_id, position, email, name, role, routing_order, status,
    token_version, token_hash, sent_at)
SELECT 'rcp_due_' || g, 'env_due_' || lpad(g::text, 9, '0'), 0, 'signer' || g || '@example.com',
    'Signer ' || g, 'SIGNER', 1, 'SENT', 1, md5('due' || g) || md5('hash' || g),
    now() - interval '1 day'
FROM generate_series(1, CAST(:n AS integer)) AS g
"""
#: Future rows: due in 1 h to 30 days, in random order (the index is not the heap's order).
FUTURE = "now() + interval '1 hour' + random() * interval '30 days'"
#: Due rows: from 1 to DUE minutes ago.
PAST = "now() - g * interval '1 minute'"


def fill(db: Any, pending: int) -> float:
    """DUE due rows and ``pending`` future rows in both tables, then ANALYZE; seconds taken."""
    from sqlalchemy import text

    from bot.accounts import service as accounts

    started = time.perf_counter()

    def seed(session: Any) -> tuple[str, str]:
        account = accounts.create_account(session, "scale bench")
        workspace = session.execute(
            text("SELECT id FROM workspaces WHERE account_id = :a"), {"a": account.id}
        ).scalar_one()
        return account.id, workspace

    account, workspace = db.run_sync(seed)
    with db.engine.begin() as conn:
        conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
        tenant = {"account": account, "workspace": workspace}
        for prefix, due_at, lo, hi in (
            ("'env_due_'", PAST, 1, DUE),
            ("'env_bench_'", FUTURE, 1, pending),
        ):
            sql = FILL_ENVELOPES.format(prefix=prefix, due_at=due_at)
            conn.execute(text(sql), {**tenant, "lo": lo, "hi": hi})
        conn.execute(text(FILL_RECIPIENTS), {"n": DUE})
        # slack numbers are unique per team: due rows take the numbers above the future ones
        for prefix, due_at, lo, hi in (
            ("'sr_due_'", PAST.replace("g *", f"(g - {pending}) *"), pending + 1, pending + DUE),
            ("'sr_bench_'", FUTURE, 1, pending),
        ):
            conn.execute(
                text(FILL_SLACK.format(prefix=prefix, due_at=due_at)), {"lo": lo, "hi": hi}
            )
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("ANALYZE")
    return time.perf_counter() - started


def timed_orm(conn: Any, scan: Scan) -> tuple[float, int]:
    """The job's SELECT as the job runs it (ORM session, objects built), rolled back:
    (seconds, rows)."""
    from sqlmodel import Session

    from bot.timeutil import utcnow

    with Session(bind=conn) as session:
        statement = scan.statement(utcnow())
        t0 = time.perf_counter()
        rows = session.exec(statement).all()
        elapsed = time.perf_counter() - t0
        session.rollback()
    return elapsed, len(rows)


def timed_sql(conn: Any, scan: Scan) -> tuple[float, int]:
    """The same SQL through the driver only (no ORM objects), rolled back: what the database
    and the round trip cost, without the constant cost of building 50 objects."""
    from bot.timeutil import utcnow

    compiled = scan.statement(utcnow()).compile(dialect=conn.dialect)
    trans = conn.begin()
    try:
        t0 = time.perf_counter()
        rows = conn.exec_driver_sql(compiled.string, compiled.params).fetchall()
        elapsed = time.perf_counter() - t0
    finally:
        trans.rollback()
    return elapsed, len(rows)


def explain(conn: Any, scan: Scan) -> list[str]:
    """EXPLAIN (ANALYZE, BUFFERS) of the job's SELECT, rolled back (it takes row locks)."""
    from bot.timeutil import utcnow

    compiled = scan.statement(utcnow()).compile(dialect=conn.dialect)
    trans = conn.begin()
    try:
        rows = conn.exec_driver_sql(
            f"EXPLAIN (ANALYZE, BUFFERS) {compiled.string}", compiled.params
        ).all()
    finally:
        trans.rollback()
    return [r[0] for r in rows]


def plan_verdict(plan: list[str], scan: Scan) -> tuple[str, str | None]:
    """(the node that reads the table, why the plan is wrong or None).

    Accepted: an Index Scan on the due-time index (rows in due order, stops at the LIMIT) or a
    Bitmap Index Scan on it (the due range, then sorted): both read only the due range."""
    nodes = [line.strip().removeprefix("->").strip() for line in plan if "Scan" in line]
    if any("Seq Scan" in n for n in nodes):
        return next(n for n in nodes if "Seq Scan" in n), "a Seq Scan: cost follows the table"
    accepted = (
        f"Index Scan using {scan.index} on {scan.table}",
        f"Index Scan Backward using {scan.index} on {scan.table}",
        f"Bitmap Index Scan on {scan.index}",
    )
    hit = next((n for n in nodes if n.startswith(accepted)), None)
    if hit is None:
        return (nodes[0] if nodes else "?"), f"{scan.index} is not used"
    return hit, None


def plan_figures(plan: list[str]) -> str:
    """Buffers touched and execution time, from EXPLAIN (ANALYZE, BUFFERS)."""
    buffers = next((line.strip() for line in plan if "Buffers:" in line), "Buffers: ?")
    executed = next((line.strip() for line in plan if "Execution Time" in line), "")
    return f"{buffers}, {executed}"


def run_job(db: Any, scan: Scan) -> tuple[str, list[str]]:
    """The real job once, rolled back; (what it did, the SELECT ... FOR UPDATE SQL it sent)."""
    from sqlalchemy import event
    from sqlmodel import Session

    sent: list[str] = []

    def capture(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if "FOR UPDATE" in statement:
            sent.append(statement)

    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        with Session(db.engine) as session:
            try:
                said = scan.job(session)
            finally:
                session.rollback()
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
    return said, sent


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def scan_bench(args: argparse.Namespace, admin: Any, base: Any, created: list[str]) -> bool:
    """Fill two databases, time both scans alternately on them; True when the targets pass."""
    from bot import migrations
    from bot.db import Database

    sizes = (SMALL, args.rows)
    print(
        f"reminder scans: {DUE} due rows + {sizes[0]:,} and {sizes[1]:,} future ones, "
        f"{args.repeats} runs per size alternating between sizes, each rolled back"
    )
    dbs: list[Any] = []
    try:
        for size in sizes:
            name = f"signbot_bench_{uuid.uuid4().hex[:8]}_scale_{size}"
            url = create_database(admin, base, name)
            created.append(name)
            db = Database(url)
            dbs.append(db)
            migrations.upgrade(db)
            seconds = fill(db, size)
            print(f"  filled {size:>9,} + {DUE} rows per table in {seconds:5.1f} s")
        return _scan_measure(args, sizes, dbs)
    finally:
        for db in dbs:
            db.dispose()


def _scan_measure(args: argparse.Namespace, sizes: tuple[int, int], dbs: list[Any]) -> bool:
    ok = True
    conns = [db.engine.connect() for db in dbs]
    ways = (("job's SELECT (ORM)", timed_orm), ("same SQL, driver only", timed_sql))
    try:
        for scan in SCANS:
            times = {way: ([], []) for way, _ in ways}
            for _ in range(5):  # warm-up: the pages the scan touches into the cache
                for conn in conns:
                    timed_orm(conn, scan)
            for i in range(args.repeats):
                order = (0, 1) if i % 2 == 0 else (1, 0)  # neither size always goes first
                for k in order:
                    for way, timed in ways:
                        elapsed, got = timed(conns[k], scan)
                        if got != DUE:
                            raise RuntimeError(f"{scan.name}: {got} rows due, expected {DUE}")
                        times[way][k].append(elapsed)
            print(f"\n  {scan.name} (table {scan.table}; {DUE} due rows returned by every run)")
            print(f"    {'':<22} {'pending':>9} {'median ms':>10} {'p95 ms':>8}")
            passed = True
            for way, _ in ways:
                med = [statistics.median(t) * 1e3 for t in times[way]]
                p95 = [pct(t, 95) * 1e3 for t in times[way]]
                for k, size in enumerate(sizes):
                    label = way if k == 0 else ""
                    print(f"    {label:<22} {size:>9,} {med[k]:>10.3f} {p95[k]:>8.3f}")
                ratio = med[1] / med[0]
                good = ratio <= SCAN_TARGET
                passed &= good
                print(
                    f"    {'':<22} {'ratio':>9} {ratio:>9.2f}x {p95[1] / p95[0]:>7.2f}x   "
                    f"median needs <= {SCAN_TARGET}x: {'PASS' if good else 'FAIL'}"
                )
            for k, size in enumerate(sizes):
                plan = explain(conns[k], scan)
                node, wrong = plan_verdict(plan, scan)
                print(f"    EXPLAIN at {size:>9,}: {node}  [{plan_figures(plan)}]")
                if k == len(sizes) - 1 or wrong:
                    for line in plan:
                        print(f"      {line}")
                if wrong:
                    print(f"    FAIL: at {size:,} rows the plan has {wrong}")
                    passed = False
            ok &= passed
    finally:
        for conn in conns:
            conn.close()
    print()
    for scan in SCANS:
        for size, db in zip(sizes, dbs, strict=True):
            said, sent = run_job(db, scan)
            print(f"  real job at {size:>9,}: {said} (rolled back)")
            timed = str(
                scan.statement(datetime.now().astimezone()).compile(dialect=db.engine.dialect)
            )
            if sent[:1] != [timed]:
                print(
                    f"  FAIL: the SQL {scan.name} sent differs from the timed statement; "
                    f"update bench/scale.py:\n    sent:  {sent[:1]}\n    timed: {timed}"
                )
                ok = False
    if ok:
        print("  the SELECT each job sent is the statement timed above")
    return ok


# ==================================================================================== main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--database-url",
        default=DEFAULT_DATABASE_URL,
        help="PostgreSQL server to create the throwaway databases on (dropped at the end)",
    )
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL, help="shared rate limiter")
    parser.add_argument("--duration", type=float, default=10, help="seconds measured per figure")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of warm-up per figure")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (>= replicas)")
    parser.add_argument("--timeout", type=float, default=5, help="per-request timeout, seconds")
    parser.add_argument(
        "--max-rps",
        type=float,
        default=6000,
        help="upper bound of any figure's req/s, to size the API keys (rate limiter budget)",
    )
    parser.add_argument("--log-level", default="info", help="the replicas' log level")
    parser.add_argument("--rows", type=int, default=1_000_000, help="pending rows, large size")
    parser.add_argument("--repeats", type=int, default=300, help="timed scans per size")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-scan", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the replicas' logs")
    args = parser.parse_args()
    if args.connections < args.threads:
        parser.error("--connections must be at least --threads")
    if args.rows <= SMALL:
        parser.error(f"--rows must be above {SMALL}")
    return args


def main() -> int:
    args = parse_args()
    base, admin = pg_admin(args.database_url)
    created: list[str] = []
    scan_ok = True
    valid: bool | None = None
    started = time.perf_counter()
    try:
        if not args.skip_throughput:
            valid = throughput(args, admin, base, created)
            print()
        if not args.skip_scan:
            scan_ok = scan_bench(args, admin, base, created)
    finally:
        try:
            drop_databases(admin, created)
        except Exception as exc:  # say so, but do not hide the run's own error
            print(f"WARNING: could not drop {created}: {exc}")
    print(f"\n{time.perf_counter() - started:.0f} s in all; databases dropped: {len(created)}")
    if valid is not None:
        print(f"throughput figures: {'valid' if valid else 'INVALID (non-2xx or errors)'}")
    if not args.skip_scan:
        print(f"scan targets: {'PASS' if scan_ok else 'FAIL'}")
    return 0 if scan_ok else 1


if __name__ == "__main__":
    sys.exit(main())
