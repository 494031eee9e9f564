"""HTTP benchmark of signbot's API against bare FastAPI baselines, in one run.

Why this shape: absolute req/s on our machines swing by tens of percent from run to run, so a
number alone proves nothing. What we can hold ourselves to is a *ratio* to baselines measured in
the same run, on the same machine, served the same way (one uvicorn worker started with the
options of ``bot/cli.py``, same logging, same database kind and file settings). The targets:

* ``GET /api/v1/envelopes/{id}`` — authenticated with a real key, rate limiter on — at least
  1.0x the faster of the bare primary-key reads (b, c) and at least 20 % of hello-world (a);
* ``POST /api/v1/envelopes`` (one uploaded document, one recipient) at least 1.0x the naive
  insert (d), with p99 under 200 ms.

Every server is its own process: our app exactly as in production (``python -m bot serve``
with ``SIGNBOT_DATA_DIR`` in a temp dir), the baselines through ``bench/baselines.py``. Each is
started, waited for on ``/healthz``, warmed up, measured, and stopped. Load comes from ``wrk
--latency`` (a generated Lua script pre-formats the requests and rotates over API keys), or,
without wrk, from ``bench/loadgen.py`` in its own process, with a warning that a Python client
may be the bottleneck.

The rate limiter stays on, so the load is spread over enough keys that none runs dry: each key
holds a burst of 200 and refills 100/min, and we give each at most ~150 requests. The key count
is derived from the hello-world rate measured first (no endpoint of ours can beat it). Note
what that implies: a real server at N req/s has at least N*0.6 active keys, and the per-process
key cache lives one second, so many keys is also the *realistic* case for the auth cache.

Usage::

    .venv/bin/python bench/api.py [--duration 10] [--connections 32]
        [--database-url postgresql://postgres@127.0.0.1:5432/test] [--profile DIR]

Exit status 0 when every target passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from baselines import READ_ID
from common import (
    API,
    BENCH_DIR,
    ENTRY_FILES,
    FRAME,
    Server,
    create_database,
    drop_databases,
    package_of,
    pdf,
    pg_admin,
    serve,
)

#: Requests we let one API key take during one phase (burst 200 + refill 100/min; margin).
REQUESTS_PER_KEY = 150


# ------------------------------------------------------------------------------------ results


@dataclass
class Result:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    errors: int
    requests: int
    notes: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return self.non_2xx == 0 and self.errors == 0 and self.requests > 0


@dataclass
class Load:
    """What one measurement sends: one method and path, rotated over ``auths`` headers."""

    method: str
    path: str
    auths: list[str] = field(default_factory=lambda: [""])
    body: str | None = None
    content_type: str | None = None

    def http_requests(self) -> list[dict[str, Any]]:
        out = []
        for auth in self.auths:
            headers = {}
            if self.content_type:
                headers["Content-Type"] = self.content_type
            if auth:
                headers["Authorization"] = auth
            out.append(
                {"method": self.method, "path": self.path, "headers": headers, "body": self.body}
            )
        return out


# ------------------------------------------------------------------------------------ databases


class Databases:
    """Where DB-backed servers keep their data: a fresh SQLite file each (default), or a
    throwaway PostgreSQL database each, created here and dropped at the end."""

    def __init__(self, tmp: Path, pg_url: str | None) -> None:
        self.tmp = tmp
        self.pg_url = pg_url
        self.created: list[str] = []
        self._admin: Any = None
        if pg_url:
            self._base, self._admin = pg_admin(pg_url)

    @property
    def kind(self) -> str:
        return "postgresql" if self.pg_url else "sqlite"

    def url_for(self, tag: str) -> str:
        if self._admin is None:
            path = self.tmp / tag / "db.sqlite3"
            path.parent.mkdir(parents=True, exist_ok=True)
            return f"sqlite:///{path}"
        name = f"signbot_bench_{uuid.uuid4().hex[:8]}_{tag.replace('-', '_')}"
        url = create_database(self._admin, self._base, name)
        self.created.append(name)
        return url

    def drop_all(self) -> None:
        if self._admin is None:
            return
        drop_databases(self._admin, self.created)


# ------------------------------------------------------------------------------------ load


def lua_quote(value: str | None) -> str:
    if value is None:
        return "nil"
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


LUA_TEMPLATE = """\
-- Generated by bench/api.py. Requests are formatted once in init() so that the client spends
-- as little as possible per request; each thread walks the key list from its own offset.
local method = @METHOD@
local path = @PATH@
local body = @BODY@
local content_type = @CTYPE@
local nthreads = @THREADS@
local auths = {
  @AUTHS@
}
local reqs = {}
local n = 0
local i = 0
local started = 0

function setup(thread)
  thread:set("thread_index", started)
  started = started + 1
end

function init(args)
  for k, auth in ipairs(auths) do
    local headers = {}
    if content_type ~= nil then headers["Content-Type"] = content_type end
    if auth ~= "" then headers["Authorization"] = auth end
    reqs[k] = wrk.format(method, path, headers, body)
  end
  n = #reqs
  i = ((thread_index or 0) * math.floor(n / nthreads)) % n
end

function request()
  i = i % n + 1
  return reqs[i]
end
"""


def lua_script(load: Load, threads: int) -> str:
    return (
        LUA_TEMPLATE.replace("@METHOD@", lua_quote(load.method))
        .replace("@PATH@", lua_quote(load.path))
        .replace("@BODY@", lua_quote(load.body))
        .replace("@CTYPE@", lua_quote(load.content_type))
        .replace("@THREADS@", str(threads))
        .replace("@AUTHS@", ",\n  ".join(lua_quote(a) for a in load.auths))
    )


_UNIT_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def _to_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not match:
        raise ValueError(f"cannot read wrk latency {text!r}")
    return float(match[1]) * _UNIT_MS[match[2]]


def parse_wrk(output: str) -> dict[str, Any]:
    """Figures from ``wrk --latency`` text output."""

    def grab(pattern: str) -> re.Match[str] | None:
        return re.search(pattern, output, re.MULTILINE)

    rps = grab(r"^Requests/sec:\s+([\d.]+)")
    p50 = grab(r"^\s+50%\s+(\S+)")
    p99 = grab(r"^\s+99%\s+(\S+)")
    total = grab(r"^\s+(\d+) requests in")
    if not (rps and p50 and p99 and total):
        raise ValueError(f"unexpected wrk output:\n{output}")
    non_2xx = grab(r"Non-2xx or 3xx responses:\s+(\d+)")
    socket_errors = grab(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
    return {
        "rps": float(rps[1]),
        "p50_ms": _to_ms(p50[1]),
        "p99_ms": _to_ms(p99[1]),
        "requests": int(total[1]),
        "non_2xx": int(non_2xx[1]) if non_2xx else 0,
        "errors": sum(int(g) for g in socket_errors.groups()) if socket_errors else 0,
        "timeouts": int(socket_errors[4]) if socket_errors else 0,
    }


class LoadGenerator:
    """wrk when installed, else ``bench/loadgen.py`` in a separate process."""

    def __init__(self, args: argparse.Namespace, work_dir: Path) -> None:
        self.args = args
        self.work_dir = work_dir
        self.wrk = shutil.which("wrk")
        self._scripts = 0

    @property
    def description(self) -> str:
        if self.wrk:
            return f"wrk -t{self.args.threads} -c{self.args.connections} --latency"
        return f"bench/loadgen.py (Python asyncio), {self.args.connections} connections"

    def run(self, base_url: str, load: Load, seconds: float) -> dict[str, Any]:
        self._scripts += 1
        if self.wrk:
            script = self.work_dir / f"load{self._scripts}.lua"
            script.write_text(lua_script(load, self.args.threads))
            command = [
                self.wrk,
                f"-t{self.args.threads}",
                f"-c{self.args.connections}",
                f"-d{max(1, round(seconds))}s",
                f"--timeout={self.args.timeout}s",
                "--latency",
                "-s",
                str(script),
                base_url,
            ]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            return parse_wrk(done.stdout)
        host, port = base_url.removeprefix("http://").split(":")
        spec = {
            "host": host,
            "port": int(port),
            "duration": seconds,
            "connections": self.args.connections,
            "timeout": self.args.timeout,
            "requests": load.http_requests(),
        }
        spec_path = self.work_dir / f"load{self._scripts}.json"
        spec_path.write_text(json.dumps(spec))
        done = subprocess.run(
            [sys.executable, str(BENCH_DIR / "loadgen.py"), str(spec_path)],
            capture_output=True,
            text=True,
            check=True,
        )
        return json.loads(done.stdout)

    def measure(self, name: str, server: Server, load: Load) -> Result:
        """Warm up, then measure; prints the row as soon as it is known."""
        self.run(server.base_url, load, self.args.warmup)
        figures = self.run(server.base_url, load, self.args.duration)
        result = Result(
            name,
            figures["rps"],
            figures["p50_ms"],
            figures["p99_ms"],
            figures["non_2xx"],
            figures["errors"],
            figures["requests"],
        )
        if figures.get("timeouts"):
            result.notes.append(
                f"{figures['timeouts']} requests timed out after {self.args.timeout} s "
                "and are missing from the percentiles"
            )
        print(format_row(result), flush=True)
        return result


# ------------------------------------------------------------------------------------ our app


@dataclass
class Keys:
    setup: str
    read: list[str]
    create: list[str]


def prepare_signbot(database_url: str, n_read: int, n_create: int) -> Keys:
    """Migrate the app's database and create its API keys before the server starts."""
    from bot import migrations
    from bot.accounts import service as accounts
    from bot.db import Database

    db = Database(database_url)
    migrations.upgrade(db)

    def work(session: Any) -> Keys:
        account = accounts.create_account(session, "bench")

        def key(name: str) -> str:
            return f"Bearer {accounts.create_key(session, account.id, 'test', name).secret}"

        return Keys(
            key("setup"),
            [key(f"read-{i}") for i in range(n_read)],
            [key(f"create-{i}") for i in range(n_create)],
        )

    try:
        return db.run_sync(work)
    finally:
        db.dispose()


def signbot_fixtures(base_url: str, auth: str) -> tuple[str, str]:
    """Upload one document and create one envelope through the API: (document id, envelope)."""
    with httpx.Client(base_url=base_url + API, headers={"Authorization": auth}, timeout=30) as c:
        doc = c.post("/documents", files={"file": ("contrat.pdf", pdf(2), "application/pdf")})
        doc.raise_for_status()
        document_id = doc.json()["id"]
        created = c.post("/envelopes", content=create_body(document_id), headers=_JSON)
        created.raise_for_status()
        envelope_id = created.json()["id"]
        c.get(f"/envelopes/{envelope_id}").raise_for_status()
    return document_id, envelope_id


_JSON = {"Content-Type": "application/json"}


def create_body(document_id: str) -> str:
    return json.dumps(
        {
            "subject": "Contrat de prestation",
            "documentIds": [document_id],
            "recipients": [
                {"email": "client@example.com", "name": "Marie Dubois", "role": "SIGNER"}
            ],
        }
    )


def expect_status(base_url: str, load: Load, status: int) -> None:
    """One request before loading a server: a bench of 404s would be a fast, wrong bench."""
    request = load.http_requests()[0]
    answer = httpx.request(
        request["method"],
        base_url + request["path"],
        headers=request["headers"],
        content=request["body"],
        timeout=30,
    )
    if answer.status_code != status:
        raise RuntimeError(
            f"{request['method']} {request['path']} answered {answer.status_code}, "
            f"expected {status}: {answer.text[:500]}"
        )


# ------------------------------------------------------------------------------------ profile


def profile(
    gen: LoadGenerator, server: Server, load: Load, out: Path, seconds: float
) -> Path | None:
    """py-spy (sampling, attached to the server's pid) while ``load`` runs; raw stacks out."""
    py_spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if py_spy is None:
        print("  (no py-spy: pip install py-spy into the venv to profile)")
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    recorder = subprocess.Popen(
        [
            py_spy,
            "record",
            "--pid",
            str(server.proc.pid),
            "--rate",
            "250",
            "--duration",
            str(round(seconds)),
            "--format",
            "raw",
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    time.sleep(0.5)  # let py-spy attach before the load starts
    figures = gen.run(server.base_url, load, seconds)
    _, err = recorder.communicate(timeout=seconds + 30)
    if recorder.returncode != 0 or not out.exists():
        print(f"  py-spy failed: {err.decode(errors='replace')[-500:]}")
        return None
    print(f"  (under py-spy: {figures['rps']:.0f} req/s, p99 {figures['p99_ms']:.1f} ms)")
    return out


def summarize_profile(path: Path, top: int = 15) -> str:
    """Where the event loop's CPU goes, in three views of py-spy's raw stacks.

    Only stacks of the thread running the event loop count (``Runner.run`` in the stack);
    idle threads that py-spy occasionally samples would otherwise blur the shares.

    * per function of ours (``bot/``), inclusive — what each of our calls costs in total;
    * per *innermost* line of ours, with the package the sample ended in — which line of ours
      made SQLAlchemy (or pydantic, logging, ...) do the work;
    * per package, self — whose code the CPU actually ran.
    """
    inclusive: collections.Counter[str] = collections.Counter()
    innermost: collections.Counter[str] = collections.Counter()
    packages: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if "Runner.run" not in stack or not count_text.isdigit():
            continue
        frames = [m for m in map(FRAME.match, stack.split(";")) if m]
        if not frames:
            continue
        count = int(count_text)
        total += count
        ours = [m for m in frames if m["file"].startswith("bot/")]
        for name in {f"{m['func']} ({m['file']})" for m in ours}:
            inclusive[name] += count
        leaf = package_of(frames[-1]["file"])
        packages[leaf] += count
        # the outermost frames (bot/__main__, cli.serve) are ours too but say nothing
        inner = next((m for m in reversed(ours) if m["file"] not in ENTRY_FILES), None)
        where = f"{inner['func']} ({inner['file']}:{inner['line']})" if inner else "(no bot frame)"
        innermost[f"{where} -> {leaf}"] += count
    if not total:
        return "  (no samples of the event loop's thread)"

    def share(
        counter: collections.Counter[str], n: int, skip: frozenset[str] = frozenset()
    ) -> list[str]:
        rows = [(name, c) for name, c in counter.most_common() if name not in skip][:n]
        return [f"    {100 * c / total:5.1f}%  {name}" for name, c in rows]

    entry = frozenset(n for n in inclusive if any(f"({f})" in n for f in ENTRY_FILES))
    return "\n".join(
        [
            f"  {total} samples of the event loop's thread (CPU only: idle waits excluded)",
            "  our functions, inclusive:",
            *share(inclusive, top, entry),
            "  innermost line of ours -> package the CPU was in:",
            *share(innermost, top),
            "  self, by package:",
            *share(packages, 10),
        ]
    )


# ------------------------------------------------------------------------------------ report


def format_row(r: Result) -> str:
    return (
        f"{r.name:<46} {r.rps:>9.0f} {r.p50_ms:>9.1f} {r.p99_ms:>9.1f} {r.non_2xx:>8} {r.errors:>7}"
    )


HEADER = f"{'name':<46} {'req/s':>9} {'p50 ms':>9} {'p99 ms':>9} {'non-2xx':>8} {'errors':>7}"


def targets(results: dict[str, Result]) -> list[tuple[str, str, str, bool]]:
    """(what, measured, needed, passed) for each target."""
    read, create = results["read"], results["create"]
    hello, insert = results["hello"], results["insert"]
    best_read = max(results["read-sync"], results["read-async"], key=lambda r: r.rps)
    rows = [
        (
            read,
            f"read / faster of (b),(c) [{best_read.name[:3]}]",
            f"{read.rps / best_read.rps:.2f}x",
            ">= 1.00x",
            read.rps >= best_read.rps,
        ),
        (
            read,
            "read / hello-world (a)",
            f"{100 * read.rps / hello.rps:.1f} %",
            ">= 20 %",
            read.rps >= 0.2 * hello.rps,
        ),
        (
            create,
            "create / naive insert (d)",
            f"{create.rps / insert.rps:.2f}x",
            ">= 1.00x",
            create.rps >= insert.rps,
        ),
        (create, "create p99", f"{create.p99_ms:.1f} ms", "< 200 ms", create.p99_ms < 200),
    ]
    out = []
    for ours, what, measured, needed, passed in rows:
        if not ours.clean:  # refused or failed requests make the figures meaningless
            out.append((what, measured + " (run had non-2xx/errors)", needed, False))
        else:
            out.append((what, measured, needed, passed))
    return out


# ------------------------------------------------------------------------------------ main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=10, help="seconds measured per target")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of warm-up per target")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--timeout", type=float, default=5, help="per-request timeout, seconds")
    parser.add_argument(
        "--database-url",
        default=None,
        help="postgresql://... to run the DB-backed servers on PostgreSQL (a throwaway "
        "database per server is created there and dropped); default SQLite in a temp dir",
    )
    parser.add_argument(
        "--log-level", default="info", help="log level of every server (default: production's)"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="after measuring, record py-spy raw stacks of our server under load into DIR",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (server logs)")
    args = parser.parse_args()
    if args.connections < args.threads:
        parser.error("--connections must be at least --threads")
    return args


def main() -> int:
    args = parse_args()
    dropped = sorted(k for k in os.environ if k.startswith(("SIGNBOT_", "SLACK_")))
    tmp = Path(tempfile.mkdtemp(prefix="signbot-bench-"))
    gen = LoadGenerator(args, tmp)
    dbs = Databases(tmp, args.database_url)
    warnings: list[str] = []
    if dropped:
        warnings.append(f"ignoring the caller's {', '.join(dropped)}: every server starts clean")
    print(
        f"signbot API bench: {gen.description}, {args.duration:g} s per target after "
        f"{args.warmup:g} s warm-up, {dbs.kind}, {os.cpu_count()} CPUs, one uvicorn worker"
    )
    if not gen.wrk:
        warnings.append(
            "wrk is not installed (apt-get install wrk): using the Python load generator; "
            "the CLIENT MAY BE THE BOTTLENECK, so compare ratios, not absolute figures"
        )
    for warning in warnings:
        print(f"WARNING: {warning}")
    print()
    print(HEADER)

    python = [sys.executable]
    baseline = [*python, str(BENCH_DIR / "baselines.py")]
    level = ["--log-level", args.log_level]
    results: dict[str, Result] = {}
    profiles: dict[str, Path | None] = {}
    try:
        with serve("hello", [*baseline, "hello", *level], tmp) as server:
            load = Load("GET", "/hello")
            expect_status(server.base_url, load, 200)
            results["hello"] = gen.measure("(a) hello-world", server, load)

        # Nothing of ours beats hello-world: its rate bounds how many requests a key set takes.
        seconds = args.warmup + args.duration + (args.duration if args.profile else 0)
        n_keys = max(20, math.ceil(results["hello"].rps * 1.2 * seconds / REQUESTS_PER_KEY))
        data_dir = tmp / "signbot-data"
        data_dir.mkdir()
        database_url = (
            dbs.url_for("signbot")
            if args.database_url
            else f"sqlite:///{(data_dir / 'signbot.db').resolve()}"
        )
        keys = prepare_signbot(database_url, n_keys, n_keys)
        env = {"SIGNBOT_DATA_DIR": str(data_dir), "SIGNBOT_LOG_LEVEL": args.log_level}
        if args.database_url:
            env["SIGNBOT_DATABASE_URL"] = database_url
        with serve("signbot", [*python, "-m", "bot", "serve"], tmp, env) as server:
            document_id, envelope_id = signbot_fixtures(server.base_url, keys.setup)
            read = Load("GET", f"{API}/envelopes/{envelope_id}", keys.read)
            create = Load(
                "POST",
                f"{API}/envelopes",
                keys.create,
                create_body(document_id),
                "application/json",
            )
            results["read"] = gen.measure(
                f"read   GET {API}/envelopes/{{id}} ({n_keys} keys)", server, read
            )
            results["create"] = gen.measure(
                f"create POST {API}/envelopes ({n_keys} keys)", server, create
            )
            if args.profile:
                for name, load in (("read", read), ("create", create)):
                    out = args.profile / f"{name}.txt"
                    profiles[name] = profile(gen, server, load, out, args.duration)

        for kind, name, load, status in (
            ("read-sync", "(b) PK read, sync def", Load("GET", f"/rows/{READ_ID}"), 200),
            (
                "read-async",
                "(c) PK read, async def + sync session",
                Load("GET", f"/rows/{READ_ID}"),
                200,
            ),
            (
                "insert",
                "(d) insert, sync def, commit per request",
                Load("POST", "/rows", body='{"name": "bench"}', content_type="application/json"),
                201,
            ),
        ):
            argv = [*baseline, kind, "--database-url", dbs.url_for(kind), *level]
            with serve(kind, argv, tmp) as server:
                expect_status(server.base_url, load, status)
                results[kind] = gen.measure(name, server, load)
    finally:
        dbs.drop_all()
        if args.keep:
            print(f"\nlogs and data kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    for result in results.values():
        for note in result.notes:
            print(f"note: {result.name}: {note}")
    per_key = (results["read"].requests * (1 + args.warmup / args.duration)) / n_keys
    print(f"\nrate limiter on: ~{per_key:.0f} read requests per key (a key allows 200 + 100/min)")
    print("\ntargets")
    passed_all = True
    for what, measured, needed, passed in targets(results):
        passed_all &= passed
        print(f"  {what:<34} {measured:>12}   need {needed:<9} {'PASS' if passed else 'FAIL'}")
    for name, path in profiles.items():
        if path is not None:
            print(f"\nprofile of our {name} ({path}; speedscope.app opens it):")
            print(summarize_profile(path))
    return 0 if passed_all else 1


if __name__ == "__main__":
    sys.exit(main())
