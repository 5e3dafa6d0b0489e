"""The report in headless Chromium, offline: rendered tables, the item browser, hostile text, 4,000 items."""

from __future__ import annotations

import json
import time
from pathlib import Path

from runkit import HOSTILE

from medtune.eval.store import PredictionStore


def _open(page, path: Path) -> tuple[list[str], list[str], float]:
    """Load ``path`` with networking off; returns (requested URLs, page errors, seconds until the browser is ready)."""
    requests: list[str] = []
    errors: list[str] = []
    page.context.set_offline(True)
    page.on("request", lambda r: requests.append(r.url))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    t0 = time.perf_counter()
    page.goto(path.resolve().as_uri(), wait_until="load")
    page.wait_for_selector("body[data-items-ready='1']", timeout=10_000)
    return requests, errors, time.perf_counter() - t0


def _count_text(page) -> str:
    return page.locator("#items-count").inner_text()


def _select_eval(page, label: str) -> None:
    page.select_option("#f-eval", label=label)


def test_run_report_offline_tables_flipped_items_and_full_output(browser_page, tiny_run, tmp_path):
    page = browser_page
    requests, errors, _ = _open(page, tiny_run / "report.html")
    body = page.inner_text("body")
    assert "|---|" not in body and page.locator("table.overview tr[data-eval]").count() == 3
    assert page.evaluate("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
    assert page.locator("img.plot").count() >= 4  # training curves, overview, length x2, reliability

    cmp = json.loads((tiny_run / "eval" / "compare.json").read_text())
    flipped = cmp["mcnemar"]["b"] + cmp["mcnemar"]["c"]
    page.select_option("#f-flip", "any")
    assert page.locator("#item-rows tr").count() == 2 * flipped  # both sides of each flipped item
    assert _count_text(page) == f"1–{2 * flipped} of {2 * flipped} items"
    _select_eval(page, "eval/tuned")
    page.locator("#item-rows tr").first.click()
    item_id = page.locator("#item-detail strong").first.inner_text().strip()
    tuned = {r["id"]: r for r in PredictionStore(tiny_run / "eval" / "tuned" / "predictions.jsonl").load()}
    row = tuned[item_id]
    shown = page.locator("#item-detail .output").evaluate("e => e.textContent")
    assert shown == row["raw_output"] and row["raw_output"].strip()
    marked = page.locator("#item-detail .output mark").inner_text()
    assert f"({row['pred']})" in marked and marked in row["raw_output"]
    assert row["question"] in page.locator("#item-detail .question").inner_text()
    assert page.locator("#item-detail .options li.gold").count() == 1
    # the same item in the other evaluation, one click away
    page.locator("#item-detail a.item-link").click()
    assert "eval/base" in page.locator("#item-detail .muted").first.inner_text()

    # loglik rows show the option probabilities
    page.select_option("#f-flip", "")
    _select_eval(page, "eval/tuned-loglik")
    page.locator("#item-rows tr").first.click()
    assert page.locator("#item-detail .prob").count() == 4 and "p=" in page.inner_text("#item-detail .options")
    # a flipped item listed in the comparison opens in the browser
    page.locator("[data-open-row]").first.click()
    assert "wrong → right" in page.inner_text("#item-detail")
    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    assert all(u.startswith(("file:", "data:")) for u in requests), requests
    assert not errors, errors


def test_4000_item_report_opens_and_filters_fast(browser_page, large_eval):
    """4,000 items x 2 evaluations: open < 2 s, filter < 2 s (chromium start not counted), paging works."""
    page = browser_page
    path = large_eval / "compare.html"
    requests, errors, open_s = _open(page, path)
    total = 8000
    assert _count_text(page) == f"1–50 of {total} items" and page.locator("#item-rows tr").count() == 50
    cmp = json.loads((large_eval / "compare.json").read_text())
    lost = cmp["mcnemar"]["b"]
    t0 = time.perf_counter()
    page.select_option("#f-flip", "lost")
    page.wait_for_function(f"document.getElementById('items-count').textContent.endsWith('of {2 * lost} items')")
    filter_s = time.perf_counter() - t0
    page.select_option("#f-outcome", "unparseable")
    _select_eval(page, "tuned")
    assert page.locator("#item-rows tr").count() == 0 or "unparseable" in page.inner_text("#item-rows")
    page.select_option("#f-flip", "")
    page.select_option("#f-outcome", "")
    _select_eval(page, "all")
    page.click("#p-next")
    assert _count_text(page) == f"51–100 of {total} items"
    size_mib = path.stat().st_size / 2**20
    print(f"4,000-item x2 report: {size_mib:.1f} MiB, open {open_s:.2f} s, filter {filter_s:.2f} s")
    assert open_s < 2.0, open_s
    assert filter_s < 2.0, filter_s
    assert all(u.startswith(("file:", "data:")) for u in requests) and not errors, (requests[:3], errors)


def test_hostile_text_shows_literally_and_never_runs(browser_page, large_eval):
    page = browser_page
    _, errors, _ = _open(page, large_eval / "compare.html")
    page.fill("#f-text", "__pwned")
    page.wait_for_function("document.getElementById('items-count').textContent.endsWith('of 2 items')")
    page.locator("#item-rows tr").first.click()
    assert page.evaluate("window.__pwned === undefined")
    assert HOSTILE in page.locator("#item-detail .output").evaluate("e => e.textContent")
    assert HOSTILE in page.locator("#item-detail .question").evaluate("e => e.textContent")
    assert page.locator("#item-detail img").count() == 0 and not errors
