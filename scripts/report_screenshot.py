"""Screenshot a medtune HTML report in headless Chromium (offline) for the docs.

    python scripts/report_screenshot.py runs/quickstart/report.html docs/img/report.png

Writes PATH (the top of the report: run card and training curves) and PATH with
``-items`` before the suffix (the item browser filtered to flipped items, one tuned item
open with its output and highlighted answer). Uses tests/browser.py's Chromium settings.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from browser import chromium_page  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("report", type=Path)
    parser.add_argument("png", type=Path)
    parser.add_argument("--width", type=int, default=1360)
    args = parser.parse_args()
    items_png = args.png.with_name(f"{args.png.stem}-items{args.png.suffix}")
    args.png.parent.mkdir(parents=True, exist_ok=True)
    with chromium_page(offline=True, viewport=(args.width, 1180)) as page:
        page.goto(args.report.resolve().as_uri(), wait_until="load")
        page.wait_for_selector("body[data-items-ready='1']")
        page.screenshot(path=str(args.png))
        page.select_option("#f-flip", "any")
        tuned = [o for o in page.locator("#f-eval option").all_inner_texts() if o.endswith("tuned")]
        if tuned:
            page.select_option("#f-eval", label=tuned[0])
        page.locator("#item-rows tr").first.click()
        page.evaluate("window.scrollTo(0, document.getElementById('items').offsetTop - 44)")  # below the sticky nav
        page.screenshot(path=str(items_png))
    print(f"{args.png}\n{items_png}")


if __name__ == "__main__":
    main()
