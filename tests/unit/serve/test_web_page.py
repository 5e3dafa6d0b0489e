"""The clinician page in headless Chromium: keyboard only, under a strict CSP, same-origin assets only;
the page asks for an API key (kept for the tab, sent as a Bearer header), a case goes in, the streamed answer
and the structured analysis come out, the disclaimer stays visible."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from serve_helpers import live_server, make_app

from medtune import DISCLAIMER

WEB = Path(__file__).parents[3] / "src" / "medtune" / "serve" / "web"
SCREENSHOT = Path(__file__).parents[3] / "docs" / "img" / "serve-page.png"


def test_page_has_no_inline_script_style_or_remote_asset():
    html = WEB.joinpath("index.html").read_text()
    scripts = re.findall(r"<script\b[^>]*>(.*?)</script>", html, re.S)
    assert scripts and all(not s.strip() for s in scripts)  # only <script src=...></script>
    assert not re.search(r"\son[a-z]+\s*=", html) and " style=" not in html and "<style" not in html
    for text in (html, WEB.joinpath("app.js").read_text(), WEB.joinpath("style.css").read_text()):
        assert not re.search(r"(?:src|href)\s*=\s*[\"']?(?:https?:)?//", text)
        assert "@import" not in text and "url(http" not in text


@pytest.fixture(scope="module")
def server(tiny_model_dir):
    app = make_app(tiny_model_dir, analyze_max_tokens=40)
    with live_server(app) as (url, _):
        yield url, app.state.test_keys


def _with_csp(page, url):
    """Record CSP violations and page errors (the server itself sends the CSP: medtune.security.transport)."""
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    return problems


def test_the_server_sends_a_csp_without_unsafe_inline(server):
    import httpx

    csp = httpx.get(server[0] + "/").headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp


def test_keyboard_only_case_analysis(browser_page, server):
    page, (url, keys) = browser_page, server
    problems = _with_csp(page, url)
    requests: list = []
    page.on("request", lambda r: requests.append(r))
    page.goto(url + "/")
    # without a key the API answers 401: the page says so and opens the box where the key goes
    page.wait_for_selector("#model-line:has-text('needs an API key')")  # (wait_for_function would need 'unsafe-eval')
    assert page.locator("#connection").get_attribute("open") is not None
    assert page.locator("#disclaimer").inner_text() == DISCLAIMER  # before any answer, too
    page.keyboard.press("Tab")  # the skip link
    page.keyboard.press("Enter")  # jumps to the case box
    assert page.evaluate("document.activeElement.id") == "case"
    page.keyboard.type("A 58-year-old man has 40 minutes of crushing chest pain radiating to the left arm.")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "question"
    page.keyboard.press("Tab")
    page.keyboard.type("A. Acute myocardial infarction")
    page.keyboard.press("Enter")
    page.keyboard.type("B. Pneumothorax")
    page.keyboard.press("Enter")
    page.keyboard.type("C. Aortic dissection")
    page.keyboard.press("Tab")  # the Connection box's summary
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "api-key"
    page.keyboard.type(keys["clinician"])
    page.keyboard.press("Tab")  # leaving the field tries the key at once
    page.wait_for_selector("#model-line:has-text('tiny')")
    assert page.evaluate("document.activeElement.id") == "submit"
    page.keyboard.press("Enter")
    page.wait_for_selector("#analysis:not([hidden])", timeout=60_000)
    assert page.evaluate("document.activeElement.id") == "analysis-title"  # focus moves to the result
    items = page.locator("#differential li")
    assert items.count() == 3
    labels = [page.locator("#differential .bar").nth(i).get_attribute("aria-label") for i in range(3)]
    assert all(re.fullmatch(r"probability [\d.]+ percent", x) for x in labels)
    widths = page.evaluate("[...document.querySelectorAll('#differential .bar > span')].map(s => s.style.width)")
    assert all(w.endswith("%") for w in widths) and widths != ["0%"] * 3
    assert page.locator("#answer").inner_text().strip()  # the streamed answer
    assert page.locator("#confidence").inner_text().endswith("%")
    assert "log-likelihood" in page.locator("#confidence-method").inner_text()
    assert page.locator("#review").inner_text().startswith(("Needs human review", "No review flag"))
    disclaimer = page.locator("#disclaimer")
    assert disclaimer.is_visible() and DISCLAIMER in disclaimer.inner_text()
    page.mouse.wheel(0, 3000)
    assert disclaimer.bounding_box()["y"] <= 1  # sticky: still on screen after scrolling
    assert all(r.url.startswith(url) for r in requests), [r.url for r in requests if not r.url.startswith(url)]
    analysis = [r for r in requests if r.url.endswith("/v1/analyze_case")]
    assert analysis and analysis[-1].headers["authorization"] == "Bearer " + keys["clinician"]
    assert page.evaluate("sessionStorage.getItem('medtune-key')") == keys["clinician"]  # this tab only
    assert page.evaluate("localStorage.length") == 0
    assert not [p for p in problems if "Content Security Policy" in p or "Refused" in p], problems
    shot = page.screenshot(full_page=True)
    assert len(shot) > 10_000
    if os.environ.get("MEDTUNE_UPDATE_SCREENSHOT"):
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        SCREENSHOT.write_bytes(shot)


def test_errors_are_announced(browser_page, server):
    page, (url, _) = browser_page, server
    page.goto(url + "/")
    page.locator("#case").focus()
    page.keyboard.type("Fever.")
    page.locator("#options").focus()
    page.keyboard.type("not an option line")
    page.keyboard.press("Control+Enter")
    alert = page.locator("#error[role=alert]")
    alert.wait_for(state="visible")
    assert "does not start with a letter" in alert.inner_text()


def test_a_wrong_key_or_role_is_announced(browser_page, server):
    page, (url, keys) = browser_page, server
    page.goto(url + "/")
    page.locator("#api-key").fill(keys["auditor"])  # a valid key of a role that may not use the case API
    page.locator("#api-key").dispatch_event("change")
    page.wait_for_selector("#model-line:has-text('clinician role')")
    page.locator("#api-key").fill("mt_0123456789ab_" + "x" * 43)
    page.locator("#case").fill("Fever.")
    page.locator("#case").focus()
    page.keyboard.press("Control+Enter")
    alert = page.locator("#error[role=alert]")
    alert.wait_for(state="visible")
    assert "API key" in alert.inner_text()


def test_a_cleared_key_is_forgotten(browser_page, server):
    """The key is kept for the tab while the field holds it: clearing the field removes it, so a reload does not
    bring it back."""
    page, (url, keys) = browser_page, server
    page.goto(url + "/")
    page.locator("#api-key").fill(keys["clinician"])
    page.locator("#api-key").press("Tab")  # leaving the field tries the key
    page.wait_for_selector("#model-line:has-text('tiny')")
    assert page.evaluate("sessionStorage.getItem('medtune-key')") == keys["clinician"]
    page.locator("#api-key").fill("")
    page.locator("#api-key").press("Tab")
    page.reload()
    page.wait_for_selector("#model-line:has-text('needs an API key')")
    assert page.locator("#api-key").input_value() == ""
    assert page.evaluate("sessionStorage.getItem('medtune-key')") is None


def _submit_options(page, url, options: str) -> None:
    page.goto(url + "/")
    page.locator("#case").fill("Fever, dysuria and flank pain.")
    page.locator("#options").fill(options)
    page.locator("#options").focus()
    page.keyboard.press("Control+Enter")


def test_a_repeated_option_letter_is_an_error_not_an_overwrite(browser_page, server):
    page, (url, _) = browser_page, server
    sent: list = []
    page.route("**/v1/analyze_case", lambda route: (sent.append(route.request.post_data), route.abort()))
    _submit_options(page, url, "A. Pyelonephritis\nB. Cystitis\nA. Renal colic")
    alert = page.locator("#error[role=alert]")
    alert.wait_for(state="visible", timeout=5_000)
    assert "letter A is used twice" in alert.inner_text() and sent == []


def test_a_lettered_line_out_of_sequence_is_an_error_not_merged(browser_page, server):
    """Options go A, B, C…: a skipped letter ("A, B, D") or a wrapped "E. coli sepsis" under B is refused with what
    was expected, never folded into the option above (the model would be asked another question)."""
    page, (url, _) = browser_page, server
    sent: list = []
    page.route("**/v1/analyze_case", lambda route: (sent.append(route.request.post_data), route.abort()))
    alert = page.locator("#error[role=alert]")
    for options, said in (("A. Pyelonephritis\nB. Gram-negative\nE. coli sepsis\nC. Cystitis", "expected option C next"),
                          ("A. Pneumonia\nB. Asthma\nD. Sarcoidosis", "expected option C next")):
        _submit_options(page, url, options)
        alert.wait_for(state="visible", timeout=5_000)
        assert said in alert.inner_text() and "join it to that line" in alert.inner_text()
    assert sent == []


def test_a_stream_that_ends_without_an_analysis_is_an_error(browser_page, server):
    """A stream cut off before its analysis or error event (a proxy timeout) says so; it never stays "Analysing…"."""
    page, (url, _) = browser_page, server
    page.route("**/v1/analyze_case", lambda route: route.fulfill(
        status=200, content_type="text/event-stream", body='data: {"type": "delta", "text": "The answer is"}\n\n'))
    _submit_options(page, url, "")
    alert = page.locator("#error[role=alert]")
    alert.wait_for(state="visible", timeout=5_000)
    assert "ended before the analysis" in alert.inner_text()
    assert page.locator("#status").inner_text() == "Failed." and page.locator("#answer").inner_text() == "The answer is"


def test_the_form_never_sends_the_case_by_itself():
    """Submitted before app.js has run (Enter in the question box while the page loads) or without it, a form with
    named fields and no method would GET /?case=...&api-key=...: the case and the key in a URL, in the browser's
    history and a proxy's access log. No field has a name, the form posts, and the CSP forbids native submission
    (app.js sends the case with fetch)."""
    from medtune.security.transport import SECURITY_HEADERS

    html = WEB.joinpath("index.html").read_text()
    assert re.findall(r"<(?:input|textarea|select)\b", html)
    assert not re.search(r"<(?:input|textarea|select|button)\b[^>]*\sname=", html)
    assert '<form id="case-form" method="post"' in html
    assert "form-action 'none'" in SECURITY_HEADERS["Content-Security-Policy"]
