"""Optional teacher LLM: rewrite reasoning as clinical prose, verify it against the KB label, refine.

ReasonMed's generate -> verify -> refine loop over any OpenAI-compatible endpoint:

1. the teacher rewrites an engine record's structured reasoning as natural clinical prose and
   states a final answer (JSON ``{"reasoning", "final_answer"}``);
2. a verifier (same or another endpoint) judges whether that answer agrees with the KB's gold
   label (JSON ``{"agrees", "reasons"}``), and a local check requires the final answer to name
   the gold label or letter, so a lenient verifier cannot pass a wrong answer;
3. on disagreement the teacher refines with the verifier's reasons, up to ``max_refine`` times;
   then the item is rejected into ``teacher_rejects.jsonl`` with every reason.

Transport errors (5xx, 429, timeouts, refused connections) and malformed JSON are retried with
exponential backoff. Every finished item (accepted or rejected) is appended to a journal at once,
so a rerun after a crash or an outage requests only unfinished items. An item whose retries ran
out on transport errors is *not* finished: it is counted as failed and retried by the next run.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..config.sections.synth import TeacherSection as TeacherConfig
from ..data.records import Record
from ..eval.extract import extract_answer
from ..utils.extras import install_hint
from ..utils.io import atomic_write_jsonl

JOURNAL, REJECTS = "teacher_journal.jsonl", "teacher_rejects.jsonl"
SYSTEM_WRITER = ("You are a careful attending physician writing teaching material. Rewrite the structured reasoning "
                 "as concise natural clinical prose (80-150 words) that reaches the gold answer. Reply with JSON only: "
                 '{"reasoning": "...", "final_answer": "..."}.')
SYSTEM_VERIFIER = ("You are a strict medical verifier. Decide whether the draft's final answer agrees with the gold "
                   'answer and its reasoning supports it. Reply with JSON only: {"agrees": true|false, "reasons": "..."}.')


class TransportError(RuntimeError):
    """The endpoint could not be reached or kept failing: the item stays unfinished."""


class BadOutput(RuntimeError):
    """The endpoint answered, but never with the JSON asked for: the item is rejected."""


def parse_json_object(text: str, keys: tuple[str, ...]) -> dict[str, Any]:
    """The first JSON object in ``text`` (code fences allowed) that has ``keys``.

    >>> parse_json_object('```json\\n{"agrees": true, "reasons": "ok"}\\n```', ("agrees",))
    {'agrees': True, 'reasons': 'ok'}
    """
    match = re.search(r"\{.*\}", text or "", flags=re.S)
    if not match:
        raise ValueError("no JSON object in the reply")
    obj = json.loads(match.group(0))
    missing = [k for k in keys if k not in obj]
    if not isinstance(obj, dict) or missing:
        raise ValueError(f"JSON reply lacks {missing}")
    return obj


class _Endpoint:
    def __init__(self, url: str, model: str, cfg: TeacherConfig):
        import openai  # optional (extra `serve`); teacher_from_section checked it is there

        key = os.environ.get(cfg.key_env) or "not-needed"  # local servers take any key
        self.client = openai.OpenAI(base_url=url, api_key=key, timeout=cfg.timeout_s, max_retries=0)
        self.model, self.cfg = model, cfg

    def ask_json(self, messages: list[dict[str, str]], keys: tuple[str, ...]) -> dict[str, Any]:
        """One JSON answer, retrying transport errors and malformed JSON with exponential backoff."""
        import openai

        last = ""
        transport_only = True
        for attempt in range(self.cfg.max_retries + 1):
            if attempt:
                time.sleep(self.cfg.backoff_s * 2 ** (attempt - 1))
            try:
                reply = self.client.chat.completions.create(model=self.model, messages=messages,
                                                            temperature=self.cfg.temperature)
                text = reply.choices[0].message.content or ""
            except (openai.APIConnectionError, openai.APITimeoutError, openai.RateLimitError,
                    openai.InternalServerError) as e:
                last = f"{type(e).__name__}: {e}"
                continue
            except openai.APIStatusError as e:  # other 4xx: our request is wrong, retrying will not help
                raise TransportError(f"HTTP {e.status_code}: {e.message}") from e
            try:
                return parse_json_object(text, keys)
            except (ValueError, json.JSONDecodeError) as e:
                last, transport_only = f"malformed JSON ({e}): {text[:200]!r}", False
        raise (TransportError if transport_only else BadOutput)(f"gave up after {self.cfg.max_retries + 1} tries: {last}")


def gold_of(record: Record) -> str:
    if record.options and record.answer.letter:
        return f"({record.answer.letter}) {record.options[record.answer.letter]}"
    return str(record.metadata.get("condition") if record.task == "diagnosis" else record.answer.text)


def names_gold(record: Record, final: str) -> bool:
    """Does the final answer state the gold letter or label? (the local half of verification)

    A lettered item's answer is read by the extractor that scores evaluations and rewards
    (``eval.extract.extract_answer``), so the article "a" is not the letter A, and an answer
    naming two options is no answer:

    >>> from medtune.data.records import Answer
    >>> r = Record(id="x", source="s", task="mcq", question="Q?", answer=Answer(letter="A", text="Myocardial infarction"),
    ...            options={"A": "Myocardial infarction", "B": "Pericarditis", "C": "Aortic dissection"})
    >>> names_gold(r, "(A) Myocardial infarction"), names_gold(r, "This is a case of (C) Aortic dissection")
    (True, False)
    """
    if record.options and record.answer.letter:
        return extract_answer(final, record.options).letter == record.answer.letter
    return str(record.metadata.get("condition", record.answer.text)).lower() in final.lower()


def _writer_messages(record: Record) -> list[dict[str, str]]:
    item = {"item_id": record.id, "task": record.task, "question": record.question, "options": record.options,
            "gold_answer": gold_of(record), "structured_reasoning": record.reasoning}
    return [{"role": "system", "content": SYSTEM_WRITER}, {"role": "user", "content": json.dumps(item, ensure_ascii=False)}]


def _verifier_messages(record: Record, draft: dict[str, Any]) -> list[dict[str, str]]:
    item = {"item_id": record.id, "question": record.question, "options": record.options, "gold_answer": gold_of(record),
            "draft_reasoning": draft["reasoning"], "draft_final_answer": draft["final_answer"]}
    return [{"role": "system", "content": SYSTEM_VERIFIER}, {"role": "user", "content": json.dumps(item, ensure_ascii=False)}]


def teach_one(record: Record, writer: _Endpoint, verifier: _Endpoint, cfg: TeacherConfig) -> dict[str, Any]:
    """Generate -> verify -> refine one record; returns a journal entry (accepted or rejected)."""
    messages = _writer_messages(record)
    reasons: list[str] = []
    draft: dict[str, Any] = {}
    for attempt in range(cfg.max_refine + 1):
        try:
            draft = writer.ask_json(messages, ("reasoning", "final_answer"))
            verdict = verifier.ask_json(_verifier_messages(record, draft), ("agrees", "reasons"))
        except BadOutput as e:
            reasons.append(str(e))
            return {"id": record.id, "status": "rejected", "reasons": reasons, "draft": draft}
        problems = [] if verdict["agrees"] is True else [f"verifier: {verdict['reasons']}"]
        if not names_gold(record, str(draft["final_answer"])):
            problems.append(f"final answer {str(draft['final_answer'])[:120]!r} does not state the gold answer {gold_of(record)!r}")
        if not problems:
            new = record.model_copy(update={"reasoning": str(draft["reasoning"]).strip(), "metadata": {
                **record.metadata, "teacher": {"model": cfg.model, "refinements": attempt}}})
            return {"id": record.id, "status": "accepted", "record": json.loads(new.model_dump_json(exclude_none=True))}
        reasons += problems
        messages = messages + [
            {"role": "assistant", "content": json.dumps(draft, ensure_ascii=False)},
            {"role": "user", "content": "The verifier disagreed: " + " ".join(problems)
             + " Revise the reasoning so it reaches the gold answer. Reply with JSON only."}]
    return {"id": record.id, "status": "rejected", "reasons": reasons, "draft": draft}


def _read_journal(path: Path) -> dict[str, dict[str, Any]]:
    done: dict[str, dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:  # a line cut by a crash: that item is simply redone
                continue
            done[entry["id"]] = entry
    return done


def run_teacher(records_in: str | Path, records_out: str | Path, cfg: TeacherConfig) -> dict[str, Any]:
    """Teach every record of ``records_in``; write accepted ones to ``records_out`` (input order) and
    rejects beside it. Resumes from the journal next to ``records_out``."""
    records_out = Path(records_out)
    journal_path = records_out.parent / JOURNAL
    records = [Record.model_validate_json(x) for x in Path(records_in).read_text(encoding="utf-8").splitlines() if x.strip()]
    done = _read_journal(journal_path)
    todo = [r for r in records if r.id not in done]
    writer = _Endpoint(cfg.url, cfg.model, cfg)
    verifier = _Endpoint(cfg.verifier_url or cfg.url, cfg.verifier_model or cfg.model, cfg)
    lock, failed = threading.Lock(), []

    def work(record: Record) -> None:
        try:
            entry = teach_one(record, writer, verifier, cfg)
        except TransportError as e:
            with lock:
                failed.append({"id": record.id, "error": str(e)})
            return
        with lock, journal_path.open("a", encoding="utf-8") as j:
            j.write(json.dumps(entry, ensure_ascii=False) + "\n")
            j.flush()
            os.fsync(j.fileno())
            done[record.id] = entry

    with ThreadPoolExecutor(max_workers=cfg.concurrency) as pool:
        list(pool.map(work, todo))
    accepted = [done[r.id]["record"] for r in records if done.get(r.id, {}).get("status") == "accepted"]
    rejected = [done[r.id] for r in records if done.get(r.id, {}).get("status") == "rejected"]
    atomic_write_jsonl(records_out, accepted)
    atomic_write_jsonl(records_out.parent / REJECTS, rejected)
    return {"url": cfg.url, "model": cfg.model, "requested": len(todo), "resumed": len(records) - len(todo),
            "accepted": len(accepted), "rejected": len(rejected), "failed": len(failed),
            "failures": failed[:20], "rejects_path": str(records_out.parent / REJECTS)}


def teacher_from_section(section: Any) -> TeacherConfig | None:
    """The ``synth.teacher`` settings of a RunConfig section, or None when no teacher URL is set."""
    teacher = section.teacher
    if not teacher.url:
        return None
    if not teacher.model:
        from ..config.load import ConfigError, ConfigProblem

        raise ConfigError([ConfigProblem("synth.teacher.model", "a teacher URL needs a model name",
                                         "pass --teacher-model NAME (or set synth.teacher.model)")])
    if importlib.util.find_spec("openai") is None:
        from ..config.load import ConfigError, ConfigProblem

        raise ConfigError([ConfigProblem("synth.teacher.url", "the teacher is called through the openai client, "
                                         "which is not installed", f"{install_hint('openai')} (or drop the teacher)")])
    return teacher
