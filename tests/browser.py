"""Headless Chromium for UI tests: Debian's ``chromium`` driven by Playwright.

Playwright's own browser download cannot work offline, so tests launch the system browser by
path. Chromium must not reach out (no network here, and a report must open offline): the flags
below switch off its background connections. ``chromium_page`` is the pytest fixture
(registered in conftest); under ``CI=true`` a missing browser fails instead of skipping.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager

CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def chromium_path() -> str | None:
    return os.environ.get("MEDTUNE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@contextmanager
def chromium_page(offline: bool = False, viewport: tuple[int, int] = (1280, 900)) -> Iterator:
    """A fresh page in a fresh headless Chromium; ``offline=True`` blocks all network (file:// only)."""
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    if path is None:
        raise RuntimeError("chromium not found: apt-get install chromium (or set MEDTUNE_CHROMIUM)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(offline=offline, viewport={"width": viewport[0], "height": viewport[1]})
            page = context.new_page()
            yield page
            context.close()
        finally:
            browser.close()
