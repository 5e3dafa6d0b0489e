"""Load: 32 concurrent clients x 50 requests, each carrying a clinical note from the synthetic PHI set, on the
tiny model behind the full security path (8 clinician keys with per-key rate limits, a small queue):

* no 5xx but backpressure: every request is served (200) or answered 429/503 with Retry-After;
* the audit log verifies afterwards (`medtune audit verify`) and holds exactly one event per request;
* not one identifier from the notes appears anywhere under the server's log and audit folders.

Run alone: `pytest tests/unit/serve/test_load.py -q` (about a minute on 2 cores)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections import Counter
from pathlib import Path

import httpx
from serve_helpers import live_server, make_app
from typer.testing import CliRunner

from medtune.security.audit_verify import read_events
from medtune.security.phi.synthetic import generate_note
from medtune.serve.run import configure_logging

CLIENTS, PER_CLIENT, KEYS = 32, 50, 8
OPTIONS = {"A": "Acute myocardial infarction", "B": "Community-acquired pneumonia", "C": "Migraine"}


def request_for(n: int, note: str) -> tuple[str, dict, bool]:
    """(path, body, stream?) of the n-th request of a client: chat, streamed chat, completions, case analysis."""
    kind = n % 10
    if kind == 9:
        return "/v1/analyze_case", {"case": note, "options": OPTIONS, "max_tokens": 16}, False
    if kind in (3, 7):
        return "/v1/completions", {"model": "tiny", "prompt": note, "max_tokens": 4}, False
    body = {"model": "tiny", "messages": [{"role": "user", "content": note + "\nMost likely diagnosis?"}], "max_tokens": 4}
    return "/v1/chat/completions", {**body, "stream": kind in (1, 5)}, kind in (1, 5)


async def one_client(http: httpx.AsyncClient, index: int, key: str, notes: list, results: list) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    for n in range(PER_CLIENT):
        path, body, stream = request_for(n, notes[(index * PER_CLIENT + n) % len(notes)].text)
        async with http.stream("POST", path, json=body, headers=headers) as r:
            text = (await r.aread()).decode()
        ended = not stream or r.status_code != 200 or (text.rstrip().endswith("data: [DONE]") and '"error"' not in text)
        results.append({"id": r.headers["x-request-id"], "status": r.status_code, "path": path, "stream_ok": ended,
                        "retry_after": r.headers.get("retry-after"), "code": _code(r.status_code, text)})


def _code(status: int, text: str) -> str | None:
    return json.loads(text)["error"]["code"] if status != 200 else None


async def drive(url: str, keys: list[str], notes: list) -> list[dict]:
    results: list[dict] = []
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as http:
        await asyncio.gather(*(one_client(http, i, keys[i % len(keys)], notes, results) for i in range(CLIENTS)))
    return results


def phi_strings(notes: list) -> set[str]:
    """Every identifier in the notes that is long enough to search for without matching by chance."""
    return {note.text[s:e].strip() for note in notes for s, e, _ in note.phi if len(note.text[s:e].strip()) >= 5}


def test_32_clients_x_50_requests_with_phi_notes(tiny_model_dir, tmp_path):
    notes = [generate_note(i) for i in range(64)]
    log_file = tmp_path / "logs" / "server.log"
    app = make_app(tiny_model_dir, folder=tmp_path, slots=4, queue_size=12, retry_after_s=1, log_file=str(log_file),
                   log_level="debug", security={"requests_per_minute": 150, "tokens_per_minute": 100_000})
    keys = [app.state.gate.keys.create(f"clinician-{i}", "clinician")[0] for i in range(KEYS)]
    handlers = configure_logging(app.state.settings)  # what run_server does: console + file, PHI filter on both
    client_loggers = [logging.getLogger(name) for name in ("httpx", "httpcore")]  # the test's client shares the process
    for logger in client_loggers:
        logger.setLevel(logging.WARNING)
    try:
        with live_server(app, log_config=None) as (url, _):
            results = asyncio.run(drive(url, keys, notes))
            alive = httpx.get(url + "/health")
            assert alive.status_code == 200
    finally:
        for handler in handlers:
            logging.getLogger().removeHandler(handler)
            handler.close()
        logging.getLogger().setLevel(logging.WARNING)
        for logger in client_loggers:
            logger.setLevel(logging.NOTSET)

    statuses = Counter(r["status"] for r in results)
    assert len(results) == CLIENTS * PER_CLIENT
    assert set(statuses) <= {200, 429, 503}, statuses
    # the clients do not back off, so both kinds of backpressure are met: a full queue (503) and a spent key (429).
    # How many get through depends on the machine's speed (~190-330 here): the floor only says that overload
    # does not stop the serving; throughput is bench/serve_load.py's job, never a timed test.
    assert statuses[200] >= 2 * CLIENTS and statuses[503] and statuses[429], statuses
    refused = [r for r in results if r["status"] != 200]
    assert all(r["retry_after"] and int(r["retry_after"]) >= 1 for r in refused)
    assert {r["code"] for r in refused} <= {"rate_limit_exceeded", "queue_full"}
    assert all(r["stream_ok"] for r in results)

    # the audit log: verified by the CLI, exactly one event per request
    sec = app.state.settings.security
    from medtune.cli.main import app as cli

    res = CliRunner().invoke(cli, ["audit", "verify", sec.audit_dir, "--public-key", sec.audit_signing_key,
                                   "--head", sec.audit_signing_key + ".head.json"])
    assert res.exit_code == 0, res.output
    events = read_events(Path(sec.audit_dir) / "audit.jsonl")
    ids = Counter(e["request_id"] for e in events)
    assert set(ids) == {r["id"] for r in results} | {alive.headers["x-request-id"]} and set(ids.values()) == {1}
    assert {(e["request_id"], e["status"]) for e in events} >= {(r["id"], r["status"]) for r in results}
    assert sum(1 for e in events if e["phi"]) >= statuses[200]  # the notes' identifiers were counted, by type

    # no identifier anywhere under the log and audit folders
    files = [p for folder in (log_file.parent, Path(sec.audit_dir)) for p in folder.rglob("*") if p.is_file()]
    text = "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in files)
    assert text.count("medtune.serve: req-") >= len(results)  # the server logged every request (at debug level)
    leaked = [s for s in phi_strings(notes) if re.search(r"(?<![0-9A-Za-z])" + re.escape(s) + r"(?![0-9A-Za-z])", text)]
    assert not leaked, leaked[:10]
