"""Teacher mode against a real OpenAI-compatible HTTP server on loopback (FastAPI + uvicorn in a thread).

The server misbehaves on purpose per item: 500s, a timeout, malformed JSON, a wrong answer that
the verifier rejects (refine loop), an item that never gets it right (rejects file), an outage
(resume), and a wrong API key.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from medtune.data.records import Record
from medtune.synth import generate_records, run_synth
from medtune.synth.teacher import JOURNAL, REJECTS, TeacherConfig, names_gold, run_teacher

KEY = "sekret-test-key"


class Script:
    """What the fake endpoint does for each item id, and a log of what it was asked."""

    def __init__(self) -> None:
        self.behaviour: dict[str, str] = {}
        self.calls: Counter = Counter()
        self.requests: list[tuple[str, str, list]] = []
        self.down = False


def _completion(content: str) -> dict:
    return {"id": "cmpl-test", "object": "chat.completion", "created": 0, "model": "fake",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


def _writer_reply(item: dict, behaviour: str, n: int, messages: list) -> tuple[int, str]:
    refining = len(messages) > 2
    if behaviour == "flaky" and n <= 2:
        return 500, "boom"
    if behaviour == "garbage" or (behaviour == "malformed" and n == 1):
        return 200, 'Sure! {"reasoning": "unterminated'
    wrong = behaviour == "hopeless" or (behaviour == "refine" and not refining)
    final = "Some unrelated disease" if wrong else f"The answer is {item['gold_answer']}."
    return 200, "```json\n" + json.dumps({"reasoning": f"PROSE for {item['item_id']}", "final_answer": final}) + "\n```"


def make_app(script: Script) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        if request.headers.get("authorization") != f"Bearer {KEY}":
            return JSONResponse({"error": {"message": "bad key"}}, status_code=401)
        body = await request.json()
        role = "verify" if "verifier" in body["messages"][0]["content"] else "write"
        item = json.loads(body["messages"][1]["content"])
        iid = item["item_id"]
        script.calls[(role, iid)] += 1
        n = script.calls[(role, iid)]
        script.requests.append((role, iid, body["messages"]))
        behaviour = script.behaviour.get(iid, "ok")
        if script.down and behaviour == "down":
            return JSONResponse({"error": {"message": "unavailable"}}, status_code=503)
        if role == "verify":
            agrees = item["gold_answer"].lower() in item["draft_final_answer"].lower()
            reason = "matches the gold answer" if agrees else f"the answer should be {item['gold_answer']}"
            return JSONResponse(_completion(json.dumps({"agrees": agrees, "reasons": reason})))
        if behaviour == "slow" and n == 1:
            await asyncio.sleep(1.5)
        status, content = _writer_reply(item, behaviour, n, body["messages"])
        if status != 200:
            return JSONResponse({"error": {"message": content}}, status_code=status)
        return JSONResponse(_completion(content))

    return app


@pytest.fixture(scope="module")
def server():
    script = Script()
    config = uvicorn.Config(make_app(script), host="127.0.0.1", port=0, log_level="error")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not srv.started and time.time() < deadline:
        time.sleep(0.05)
    port = srv.servers[0].sockets[0].getsockname()[1]
    yield script, f"http://127.0.0.1:{port}/v1"
    srv.should_exit = True
    thread.join(timeout=10)


def _cfg(url: str, **kw) -> TeacherConfig:
    settings = {"concurrency": 3, "max_retries": 3, "backoff_s": 0.05, "timeout_s": 0.8, "max_refine": 2, **kw}
    return TeacherConfig(url=url, model="fake", **settings)


def _write_records(path: Path, n: int, seed: int) -> list[Record]:
    recs = list(generate_records(n, seed, tasks=["diagnosis", "mcq"]))
    path.write_text("".join(r.model_dump_json() + "\n" for r in recs))
    return recs


def test_generate_verify_refine_retries_and_rejects(server, tmp_path, monkeypatch):
    script, url = server
    monkeypatch.setenv("MEDTUNE_TEACHER_API_KEY", KEY)
    recs = _write_records(tmp_path / "in.jsonl", 4, seed=101)
    plan = ["ok", "flaky", "malformed", "refine", "hopeless", "garbage", "slow", "ok"]
    script.behaviour.update({r.id: b for r, b in zip(recs, plan, strict=True)})
    by = {b: r.id for r, b in zip(recs, plan, strict=True)}
    result = run_teacher(tmp_path / "in.jsonl", tmp_path / "out.jsonl", _cfg(url))
    assert (result["accepted"], result["rejected"], result["failed"]) == (6, 2, 0), result

    out = [Record.model_validate_json(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r.id for r in out] == [r.id for r in recs if r.id not in (by["hopeless"], by["garbage"])]  # input order
    assert all(r.reasoning == f"PROSE for {r.id}" and r.answer == next(x for x in recs if x.id == r.id).answer for r in out)
    assert script.calls[("write", by["flaky"])] == 3          # two 500s, then success
    assert script.calls[("write", by["malformed"])] == 2      # malformed JSON retried once
    assert script.calls[("write", by["slow"])] == 2           # timed out once, retried
    assert script.calls[("write", by["garbage"])] == 4        # 1 + max_retries, then rejected
    assert script.calls[("write", by["hopeless"])] == 3       # 1 + max_refine
    refined = next(r for r in out if r.id == by["refine"])
    assert refined.metadata["teacher"]["refinements"] == 1
    second = [m for role, iid, m in script.requests if role == "write" and iid == by["refine"]][1]
    assert "the answer should be" in second[-1]["content"]   # the verifier's reasons reached the writer

    rejects = {x["id"]: x for x in map(json.loads, (tmp_path / REJECTS).read_text().splitlines())}
    assert set(rejects) == {by["hopeless"], by["garbage"]}
    assert len([r for r in rejects[by["hopeless"]]["reasons"] if r.startswith("verifier:")]) == 3
    assert "malformed JSON" in rejects[by["garbage"]]["reasons"][0]


def test_resume_never_requests_a_finished_item(server, tmp_path, monkeypatch):
    script, url = server
    monkeypatch.setenv("MEDTUNE_TEACHER_API_KEY", KEY)
    recs = _write_records(tmp_path / "in.jsonl", 3, seed=202)
    script.behaviour.update({recs[1].id: "down", recs[4].id: "down"})
    script.down = True
    first = run_teacher(tmp_path / "in.jsonl", tmp_path / "out.jsonl", _cfg(url, max_retries=1))
    assert (first["accepted"], first["failed"]) == (4, 2)
    assert len((tmp_path / JOURNAL).read_text().splitlines()) == 4
    script.down = False
    before = len(script.requests)
    second = run_teacher(tmp_path / "in.jsonl", tmp_path / "out.jsonl", _cfg(url))
    asked = {iid for _, iid, _ in script.requests[before:]}
    assert asked == {recs[1].id, recs[4].id}
    assert (second["accepted"], second["failed"], second["resumed"]) == (6, 0, 4)
    before = len(script.requests)
    third = run_teacher(tmp_path / "in.jsonl", tmp_path / "out.jsonl", _cfg(url))
    assert len(script.requests) == before and third["requested"] == 0 and third["accepted"] == 6


def test_wrong_key_fails_fast_without_retries(server, tmp_path, monkeypatch):
    script, url = server
    monkeypatch.setenv("MEDTUNE_TEACHER_API_KEY", "wrong")
    recs = _write_records(tmp_path / "in.jsonl", 1, seed=303)
    result = run_teacher(tmp_path / "in.jsonl", tmp_path / "out.jsonl", _cfg(url))
    assert result["failed"] == 2 and "HTTP 401" in result["failures"][0]["error"]
    assert all(script.calls[("write", r.id)] == 0 for r in recs)  # rejected before the handler counted


def test_run_synth_with_teacher_writes_card_and_records(server, tmp_path, monkeypatch):
    _, url = server
    monkeypatch.setenv("MEDTUNE_TEACHER_API_KEY", KEY)
    result = run_synth(tmp_path / "run", 3, seed=5, tasks=["diagnosis"], teacher=_cfg(url))
    assert result["teacher"]["accepted"] == 3
    rows = [json.loads(x) for x in (tmp_path / "run" / "records.jsonl").read_text().splitlines()]
    assert all(r["metadata"]["teacher"]["model"] == "fake" for r in rows)
    assert "teacher | fake" in (tmp_path / "run" / "dataset_card.md").read_text()


def test_run_synth_counts_the_records_the_teacher_accepted(tmp_path, monkeypatch):
    """Counts, stats, card and manifest describe records.jsonl as written, after the teacher's rejections."""
    import medtune.synth.teacher as teacher_mod

    def half(records_in, records_out, cfg):
        rows = Path(records_in).read_text().splitlines()
        Path(records_out).write_text("".join(x + "\n" for x in rows[::2]))
        return {"url": cfg.url, "model": cfg.model, "requested": len(rows), "resumed": 0, "accepted": len(rows[::2]),
                "rejected": len(rows[1::2]), "failed": 0, "failures": [], "rejects_path": str(Path(records_out).parent / REJECTS)}

    monkeypatch.setattr(teacher_mod, "run_teacher", half)
    result = run_synth(tmp_path / "run", 10, seed=7, tasks=["mcq"], teacher=_cfg("http://127.0.0.1:9/v1"))
    written = [Record.model_validate_json(x) for x in (tmp_path / "run" / "records.jsonl").read_text().splitlines()]
    assert len(written) == 5 and result["records"] == 5 and result["cases"] == 10
    assert (result["teacher"]["accepted"], result["teacher"]["rejected"]) == (5, 5)
    assert result["letters"] == dict(Counter(r.answer.letter for r in written))
    assert sum(sum(row.values()) for row in result["by_specialty"].values()) == 5 and result["by_task"] == {"mcq": 5}
    assert json.loads((tmp_path / "run" / "stats.json").read_text())["records"] == 5
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["summary"]["records"] == 5
    assert next(o for o in manifest["outputs"] if o["path"].endswith("records.jsonl"))["records"] == 5
    card = (tmp_path / "run" / "dataset_card.md").read_text()
    assert "| records | 5 |" in card and "5 accepted, 5 rejected" in card


def test_local_check_catches_a_lenient_verifier():
    rec = next(generate_records(1, 9, tasks=["mcq"]))
    letter = rec.answer.letter
    other = next(k for k in rec.options if k != letter)
    assert names_gold(rec, f"The answer is ({letter}).")
    assert not names_gold(rec, f"The answer is ({other}) {rec.options[other]}.")


def test_local_check_does_not_read_the_article_a_as_letter_a():
    """Gold letter A: "a" in a wrong answer's prose is not the letter; the answer is read as evaluations read it."""
    from medtune.data.records import Answer

    rec = Record(id="x-mcq", source="s", task="mcq", question="Q?", answer=Answer(letter="A", text="Acute myocardial infarction"),
                 options={"A": "Acute myocardial infarction", "B": "Acute pericarditis", "C": "Aortic dissection",
                          "D": "Pulmonary embolism"})
    assert not names_gold(rec, "This is a case of (C) Aortic dissection")
    assert not names_gold(rec, "(C) Aortic dissection, a tearing pain")
    assert not names_gold(rec, "Answer: A or C")  # two answers are no answer
    for final in ("(A) Acute myocardial infarction", "The answer is A.", "The answer is (A) Acute myocardial infarction.",
                  "Acute myocardial infarction"):
        assert names_gold(rec, final), final


def test_backoff_grows_exponentially(server, tmp_path, monkeypatch):
    script, url = server
    monkeypatch.setenv("MEDTUNE_TEACHER_API_KEY", KEY)
    recs = _write_records(tmp_path / "in.jsonl", 1, seed=404)
    script.behaviour[recs[0].id] = "flaky"  # two 500s before success: waits 0.2 s then 0.4 s
    (tmp_path / "one.jsonl").write_text(recs[0].model_dump_json() + "\n")
    start = time.perf_counter()
    result = run_teacher(tmp_path / "one.jsonl", tmp_path / "out.jsonl", _cfg(url, backoff_s=0.2, concurrency=1))
    assert result["accepted"] == 1 and script.calls[("write", recs[0].id)] == 3
    assert time.perf_counter() - start >= 0.6


def test_teacher_settings_live_in_one_nested_section():
    from medtune.config import load_config
    from medtune.config.load import ConfigError
    from medtune.synth.teacher import teacher_from_section

    assert teacher_from_section(load_config(None, []).synth) is None  # no URL: no teacher
    cfg = load_config(None, ["synth.teacher.url=http://127.0.0.1:9/v1", "synth.teacher.model=m", "synth.teacher.max_refine=5"])
    teacher = teacher_from_section(cfg.synth)
    assert (teacher.url, teacher.model, teacher.max_refine, teacher.concurrency) == ("http://127.0.0.1:9/v1", "m", 5, 4)
    with pytest.raises(ConfigError, match="synth.teacher.model"):
        teacher_from_section(load_config(None, ["synth.teacher.url=http://127.0.0.1:9/v1"]).synth)
