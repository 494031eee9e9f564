"""Headless Debian Chromium driven by Playwright, for tests of the signer page as people see it.

Playwright's own browser downloads are blocked here (and unneeded): Debian's ``chromium``
speaks a protocol close enough to Playwright's (FACTS.md, "Playwright + Debian Chromium").
A test module calls :func:`chromium` once (a launch costs ~0.2 s) and opens a fresh context
per test, so that cookies (the one-time-code proof) never leak from one test to the next.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Locator, Page, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PHONE: dict[str, Any] = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
}
"""A phone-sized context: most signers open the invitation on their phone."""
TIMEOUT_MS = 15_000
"""Long enough for a cold page render on a busy CI machine, short enough to fail fast."""


@contextmanager
def chromium() -> Iterator[Browser]:
    """One headless Chromium for the duration (Playwright's driver stops with it)."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def new_page(browser: Browser, **options: Any) -> Iterator[Page]:
    """A page in a fresh context (its own cookies and storage), closed afterwards."""
    context = browser.new_context(**options)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


def draw_signature(page: Page, selector: str = "#pad") -> None:
    """Draw two strokes on the canvas with the mouse, as a person signing would: pointer
    events carry real coordinates, so the canvas has ink where a signature goes."""
    box = page.locator(selector).bounding_box()
    assert box is not None, f"{selector} is not visible"
    x, y, w, h = box["x"], box["y"], box["width"], box["height"]
    strokes = [
        [(0.10, 0.70), (0.20, 0.25), (0.30, 0.75), (0.40, 0.30), (0.50, 0.65)],
        [(0.55, 0.55), (0.70, 0.35), (0.80, 0.60), (0.90, 0.40)],
    ]
    for stroke in strokes:
        (fx, fy), rest = stroke[0], stroke[1:]
        page.mouse.move(x + fx * w, y + fy * h)
        page.mouse.down()
        for fx, fy in rest:
            page.mouse.move(x + fx * w, y + fy * h, steps=4)
        page.mouse.up()


def box_of(page: Page, target: str | Locator) -> dict[str, float]:
    """The bounding box (CSS pixels, relative to the viewport) of a visible element."""
    locator = page.locator(target) if isinstance(target, str) else target
    box = locator.bounding_box()
    assert box is not None, f"{target} is not visible"
    return dict(box)
