"""Signer page benchmark: a signer's first view of ``/sign/{token}`` against raw pypdfium2.

Why this shape: what a signer waits for when they open the link is the page plus every page
image, and on a first view every image is a cold render (PDFium) and a WebP encode (Pillow).
That work has a floor: opening the PDF once, rendering each page and encoding it, with nothing
else around it. The target is a *ratio* to that floor, measured in the same process and run,
interleaved, because absolute times on these machines swing from run to run.

- **first view**: ``GET /sign/{token}`` then ``GET`` every page image it names, one after the
  other on one keep-alive connection (a browser's first paint of every page), over real HTTP
  to the app served in this process by uvicorn (``bot.cli``'s options, the API role: no
  background worker competes). Each run uploads a fresh PDF, so no image is cached;
- **second view**: the same requests again right after (every image from the cache);
- **baseline**: ``pypdfium2.PdfDocument`` of the same bytes, ``render`` of each page at the
  previews' scale, encoded by the previews' own ``encode`` (lossless WebP for text pages,
  lossy for large ones), in-process.

The document is ~10 pages of text (a contract, not a scan), different in every run.

Usage::

    .venv/bin/python bench/signer_page.py [--runs 15] [--warmup 2] [--pages 10]

Targets: median(first view) / median(baseline) <= 1.5. The second view's ratio is printed for
information. Exit status 0 when the target passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import io
import math
import os
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx
import pypdfium2 as pdfium
import uvicorn
from reportlab.lib.pagesizes import A4
from reportlab.pdfgen import canvas

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import API, free_port

from bot import migrations
from bot.accounts import service as accounts
from bot.app import create_app
from bot.cli import SERVE_OPTIONS
from bot.config import Settings
from bot.db import Database
from bot.documents.previews import QUALITY, SCALE, encode

TARGET_RATIO = 1.5
IMAGE = re.compile(r'<img src="(/sign/[^"]+/pages/\d+/\d+)"')
CLAUSE = (
    "The supplier shall deliver the services described in schedule {n} with reasonable care "
    "and skill, and the customer shall pay each invoice within thirty days of its date."
)


def make_document(pages: int, nonce: str) -> bytes:
    """``pages`` A4 pages of contract-like text (a heading, ~45 lines), with ``nonce`` on every
    page: a different document, hence a different hash and a cold preview cache, per run."""
    buf = io.BytesIO()
    pdf = canvas.Canvas(buf, pagesize=A4, pageCompression=1)
    for number in range(1, pages + 1):
        pdf.setFont("Helvetica-Bold", 15)
        pdf.drawString(60, 790, f"Master services agreement — page {number} of {pages}")
        pdf.setFont("Helvetica", 9.5)
        for line in range(46):
            text = CLAUSE.format(n=number * 100 + line)
            pdf.drawString(60, 760 - 15 * line, f"{number}.{line + 1:<3} {text[: 70 + line % 25]}")
        pdf.setFont("Helvetica", 7)
        pdf.drawString(60, 40, f"Reference {nonce}")
        pdf.showPage()
    pdf.save()
    return buf.getvalue()


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


# ------------------------------------------------------------------------------------ server


@contextmanager
def served(data_dir: Path) -> Iterator[tuple[str, str]]:
    """The app on a temp SQLite database, served from a thread of this process as
    ``signbot serve --role api`` would; yields (base URL, a sandbox API key)."""
    for name in list(os.environ):  # a run must not depend on the caller's configuration
        if name.startswith(("SIGNBOT_", "SLACK_")):
            del os.environ[name]
    port = free_port()
    settings = Settings(data_dir=data_dir, port=port, role="api")
    db = Database(settings.effective_database_url)
    migrations.upgrade(db)

    def provision(session):  # type: ignore[no-untyped-def]
        account = accounts.create_account(session, "Bench & Co")
        return accounts.create_key(session, account.id, "test", "bench").secret

    secret = db.run_sync(provision)
    app = create_app(settings, db)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **SERVE_OPTIONS)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            with suppress(httpx.HTTPError):
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline or not thread.is_alive():
                raise SystemExit("the app did not answer /healthz within 30 s")
            time.sleep(0.05)
        yield base, secret
    finally:
        server.should_exit = True
        thread.join(timeout=25)
        db.dispose()


def new_link(api: httpx.Client, pdf: bytes) -> str:
    """Upload ``pdf``, create and send an envelope for one signer; their sign link."""
    document = api.post("/documents", files={"file": ("msa.pdf", pdf, "application/pdf")})
    document.raise_for_status()
    created = api.post(
        "/envelopes",
        json={
            "subject": "Master services agreement",
            "documentIds": [document.json()["id"]],
            "recipients": [{"email": "signer@example.com", "name": "Marie Dubois"}],
        },
    )
    created.raise_for_status()
    envelope = created.json()
    api.post(f"/envelopes/{envelope['id']}/send").raise_for_status()
    return str(envelope["recipients"][0]["signUrl"])


# ------------------------------------------------------------------------------------ sides


@dataclass
class View:
    total: float
    html: float
    image_bytes: int


def view(client: httpx.Client, link: str, pages: int) -> View:
    """The page, then each image it names in order, as a browser's first paint does."""
    started = time.perf_counter()
    page = client.get(link)
    html_done = time.perf_counter()
    if page.status_code != 200:
        raise SystemExit(f"GET {link} answered {page.status_code}")
    images = IMAGE.findall(page.text)
    if len(images) != pages:
        raise SystemExit(f"the page names {len(images)} images, expected {pages}")
    size = 0
    for src in images:
        image = client.get(src)
        if image.status_code != 200 or image.headers["content-type"] != "image/webp":
            raise SystemExit(f"GET {src} answered {image.status_code}")
        size += len(image.content)
    return View(time.perf_counter() - started, html_done - started, size)


def baseline(pdf: bytes) -> int:
    """The floor: open once, render each page, encode it as the previews do. Bytes out."""
    document = pdfium.PdfDocument(pdf)
    size = 0
    try:
        for index in range(len(document)):
            size += len(encode(document[index].render(scale=SCALE).to_pil()))
    finally:
        document.close()
    return size


# ------------------------------------------------------------------------------------ main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=15, help="measured runs (a fresh PDF each)")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured runs first")
    parser.add_argument("--pages", type=int, default=10)
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="signbot-bench-signer-"))
    try:
        with served(tmp / "data") as (base, secret):
            return run(args, base, secret)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(args: argparse.Namespace, base: str, secret: str) -> int:
    sample = make_document(args.pages, "sample")
    print(
        f"signbot signer page bench: {args.pages}-page text PDF of {len(sample) / 1e3:.0f} KB, "
        f"scale {SCALE} WebP (lossless, q{QUALITY} when large), "
        f"{args.runs} runs after {args.warmup} warm-up, "
        f"interleaved, {os.cpu_count()} CPUs, app in-process on SQLite"
    )
    load = os.getloadavg()[0]
    if load > 0.5 * (os.cpu_count() or 1):
        print(f"WARNING: load average {load:.2f}: other processes compete with the bench")

    api = httpx.Client(
        base_url=f"{base}{API}", headers={"Authorization": f"Bearer {secret}"}, timeout=60
    )
    browser = httpx.Client(base_url=base, timeout=60)  # one keep-alive connection
    times: dict[str, list[float]] = {"baseline": [], "first view": [], "second view": []}
    html: dict[str, list[float]] = {"first view": [], "second view": []}
    sizes: dict[str, int] = {}
    with api, browser:
        for index in range(args.warmup + args.runs):
            pdf = make_document(args.pages, uuid.uuid4().hex)
            link = new_link(api, pdf).removeprefix(base)
            measured: dict[str, float] = {}
            # alternate which side goes first, so neither always follows the other's garbage
            for side in ("baseline", "view") if index % 2 == 0 else ("view", "baseline"):
                if side == "baseline":
                    started = time.perf_counter()
                    sizes["baseline"] = baseline(pdf)
                    measured["baseline"] = time.perf_counter() - started
                else:
                    first = view(browser, link, args.pages)
                    second = view(browser, link, args.pages)
                    sizes["first view"] = sizes["second view"] = first.image_bytes
                    measured["first view"], measured["second view"] = first.total, second.total
                    html["first view"].append(first.html)
                    html["second view"].append(second.html)
            if index >= args.warmup:
                for name, value in measured.items():
                    times[name].append(value)
    for name in html:
        del html[name][: args.warmup]

    print(
        f"\n{'':<12} {'median ms':>10} {'p90 ms':>8} {'min ms':>8} {'html ms':>8} "
        f"{'per page':>9} {'images KB':>10}"
    )
    for name, values in times.items():
        median = statistics.median(values)
        page_html = f"{statistics.median(html[name]) * 1e3:>8.1f}" if name in html else " " * 8
        print(
            f"{name:<12} {median * 1e3:>10.1f} {percentile(values, 90) * 1e3:>8.1f} "
            f"{min(values) * 1e3:>8.1f} {page_html} {median / args.pages * 1e3:>9.1f} "
            f"{sizes[name] / 1e3:>10.0f}"
        )
    floor = statistics.median(times["baseline"])
    ratio = statistics.median(times["first view"]) / floor
    cached = statistics.median(times["second view"]) / floor
    passed = ratio <= TARGET_RATIO
    print("\ntargets")
    print(
        f"  {'median first view / baseline':<34} {ratio:>8.2f}   need <= {TARGET_RATIO:<5} "
        f"{'PASS' if passed else 'FAIL'}"
    )
    print(f"  {'median second view / baseline':<34} {cached:>8.2f}   (information)")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
