"""Sealing benchmark: our ``Sealer`` against pyHanko's stock path, in one run, interleaved.

Why this shape: a seal is CPU work on the server's event loop, so its cost is what matters, and
absolute times on these machines swing from run to run; the target is therefore a *ratio* to
the stock path measured in the same process on the same file, alternating ours and stock so
that both see the same noise. The file is what a completed envelope looks like at its largest
common size: 100 pages of text with an image on each (incompressible pixels), ~1 MB.

- **stock**: ``SimpleSigner.load(seal-key.pem, seal.pem, ca_chain_files=[root.pem])`` loaded
  once, then ``signers.sign_pdf`` per document (no ``bytes_reserved``: pyHanko sizes the CMS
  with a dry-run signature; the key is re-parsed from DER on every signature);
- **ours**: ``bot.signing.seal.Sealer`` (kept ``cryptography`` key, chain-sized
  ``bytes_reserved``) awaited on one event loop, as the job worker runs it.

Both seal PAdES B-B with SHA-256, the same identity (generated in a temp dir) and an invisible
field. Every output of the warm-up is checked with ``bot.signing.verify.verify_pdf``.

Usage::

    .venv/bin/python bench/seal.py [--runs 40] [--warmup 3] [--pages 100]

Target: median(ours) / median(stock) <= 0.5. Exit status 0 when it passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import math
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields, signers
from reportlab.lib.pagesizes import A4
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen import canvas

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.signing.certs import SEAL_KEY_PEM, SEAL_PEM, SealIdentity, load_identity
from bot.signing.seal import Sealer
from bot.signing.verify import verify_pdf

TARGET_RATIO = 0.5
LOREM = (
    "The parties agree that the services described in the schedule are delivered as set out "
    "below, and that payment falls due thirty days after each invoice."
)


def make_document(pages: int, seed: int = 7) -> bytes:
    """``pages`` pages of text, each with a 60x44 px noise image (7.9 KB of pixels that Flate
    cannot shrink, ~10 KB once reportlab ASCII85-encodes them): ~1 MB for 100 pages. Seeded,
    so every run seals the same bytes."""
    rng = random.Random(seed)
    buf = io.BytesIO()
    pdf = canvas.Canvas(buf, pagesize=A4, pageCompression=1)
    for number in range(1, pages + 1):
        pdf.setFont("Helvetica-Bold", 16)
        pdf.drawString(72, 780, f"Services agreement — page {number} of {pages}")
        pdf.setFont("Helvetica", 10)
        for line in range(40):
            pdf.drawString(72, 750 - 14 * line, f"{line + 1:>2}. {LOREM[: 60 + line % 30]}")
        pixels = Image.frombytes("RGB", (60, 44), rng.randbytes(60 * 44 * 3))
        pdf.drawImage(ImageReader(pixels), 380, 60, width=150, height=75)
        pdf.showPage()
    pdf.save()
    return buf.getvalue()


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation: p90 of 40 values is the 36th)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def stock_signer(identity_dir: Path) -> Callable[[bytes], bytes]:
    signer = signers.SimpleSigner.load(
        str(identity_dir / SEAL_KEY_PEM),
        str(identity_dir / SEAL_PEM),
        ca_chain_files=(str(identity_dir / "root.pem"),),
    )
    if signer is None:
        raise SystemExit("SimpleSigner.load could not load the generated identity")
    meta = signers.PdfSignatureMetadata(
        field_name="stock-seal",
        md_algorithm="sha256",
        subfilter=fields.SigSeedSubFilter.PADES,
        reason="benchmark",
    )

    def sign(pdf: bytes) -> bytes:
        writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
        return signers.sign_pdf(writer, meta, signer=signer).getvalue()

    return sign


def our_sealer(identity: SealIdentity, loop: asyncio.AbstractEventLoop) -> Callable[[bytes], bytes]:
    sealer = Sealer(identity)

    def seal(pdf: bytes) -> bytes:
        return loop.run_until_complete(sealer.seal(pdf, reason="benchmark"))

    return seal


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=40, help="measured seals per side")
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured seals per side")
    parser.add_argument("--pages", type=int, default=100)
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    logging.basicConfig(level=logging.ERROR)  # the self-signed warning is expected here
    tmp = Path(tempfile.mkdtemp(prefix="signbot-bench-seal-"))
    try:
        return run(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(args: argparse.Namespace, tmp: Path) -> int:
    identity = load_identity(tmp, None, None)
    document = make_document(args.pages)
    print(
        f"signbot seal bench: {args.pages}-page PDF of {len(document) / 1e6:.2f} MB, "
        f"{args.runs} runs per side after {args.warmup} warm-up, interleaved, "
        f"{os.cpu_count()} CPUs, PAdES B-B sha256, RSA-{identity.key.key_size}"  # type: ignore[union-attr]
    )
    load = os.getloadavg()[0]
    if load > 0.5 * (os.cpu_count() or 1):
        print(f"WARNING: load average {load:.2f}: other processes compete with the bench")

    loop = asyncio.new_event_loop()
    sides = {"stock": stock_signer(tmp / "seal"), "ours": our_sealer(identity, loop)}
    assert identity.root is not None
    for name, run in sides.items():
        for _ in range(args.warmup):
            out = run(document)
        report = verify_pdf(out, [identity.root])
        if not report.ok:
            raise SystemExit(f"{name}: the sealed PDF does not verify: {report}")
    times: dict[str, list[float]] = {name: [] for name in sides}
    for index in range(args.runs):
        # alternate which side goes first, so neither always follows the other's garbage
        order = list(sides) if index % 2 == 0 else list(reversed(sides))
        for name in order:
            started = time.perf_counter()
            sides[name](document)
            times[name].append(time.perf_counter() - started)
    grown = {name: (len(run(document)) - len(document)) / 1024 for name, run in sides.items()}
    loop.close()

    print(f"\n{'':<8} {'median ms':>10} {'p90 ms':>8} {'min ms':>8} {'output +KB':>11}")
    for name, values in times.items():
        print(
            f"{name:<8} {statistics.median(values) * 1e3:>10.1f} "
            f"{percentile(values, 90) * 1e3:>8.1f} {min(values) * 1e3:>8.1f} "
            f"{grown[name]:>11.1f}"
        )
    ratio = statistics.median(times["ours"]) / statistics.median(times["stock"])
    passed = ratio <= TARGET_RATIO
    print("\ntargets")
    print(
        f"  {'median ours / stock':<34} {ratio:>8.2f}   need <= {TARGET_RATIO:<5} "
        f"{'PASS' if passed else 'FAIL'}"
    )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
