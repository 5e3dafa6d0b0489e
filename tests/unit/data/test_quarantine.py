"""Malformed input: good rows import, each bad row is quarantined with its line and reason."""

from __future__ import annotations

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from medtune.data.importers import DataError, Quarantine, detect_format, iter_records

GOOD = {"Question": "What causes scurvy?", "Complex_CoT": "Collagen synthesis needs ascorbate.", "Response": "Vitamin C deficiency."}


def _line(**changes):
    row = dict(GOOD, **changes)
    return json.dumps({k: v for k, v in row.items() if v is not ...}).encode()


def _dirty_file(path):
    """Lines 1, 4 and 10 are good; every other line is broken in a different way."""
    lines = [
        _line(),                                           # 1 good
        b'{"Question": "unterminated',                     # 2 bad JSON
        _line(Response=...),                               # 3 missing field
        _line(Question="Why is the sky blue?"),            # 4 good
        _line(Question=42),                                # 5 wrong type
        _line(Question="   "),                             # 6 empty string
        _line(Complex_CoT="x" * (5 * 1024 * 1024)),        # 7 a 5 MB line
        b'{"Question": "caf\xe9", "Response": "ok"}',      # 8 invalid UTF-8 (latin-1 byte)
        _line(Response="bell\x07"),                        # 9 control character
        _line(Question="Third good one?"),                 # 10 good
        b"[1, 2, 3]",                                      # 11 not an object
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_dirty_jsonl_counts_add_up(tmp_path):
    path = _dirty_file(tmp_path / "dirty.jsonl")
    with Quarantine(tmp_path / "quarantine.jsonl") as q:
        stream = iter_records(path, "medical_o1", quarantine=q)
        good = list(stream)
    assert [r.question for r in good] == ["What causes scurvy?", "Why is the sky blue?", "Third good one?"]
    assert stream.seen == 11 == stream.accepted + q.count and q.count == 8
    entries = [json.loads(x) for x in (tmp_path / "quarantine.jsonl").read_text().splitlines()]
    got = {e["line"]: (e["field"], e["reason"]) for e in entries}
    assert sorted(got) == [2, 3, 5, 6, 7, 8, 9, 11]
    assert got[2][1].startswith("bad JSON")
    assert got[3] == ("Response", "missing field")
    assert got[5] == ("Question", "non-text value of type int")
    assert got[6] == ("Question", "empty string")
    assert got[7][1].startswith("over-long line")
    assert got[8][1].startswith("invalid UTF-8")
    assert got[9][0] == "Response" and got[9][1].startswith("control character: U+0007")
    assert got[11][1] == "not a JSON object: list"
    assert all(e["file"] == str(path) and len(e["raw"]) <= 300 for e in entries)


def test_dirty_gzip_same_result(tmp_path):
    plain = _dirty_file(tmp_path / "dirty.jsonl")
    gz = tmp_path / "dirty.jsonl.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    stream = iter_records(gz, "medical_o1")
    assert len(list(stream)) == 3 and stream.rejected == 8 and stream.reasons["bad JSON"] == 1


def test_mcq_rules(tmp_path):
    rows = [
        {"question": "Q1?", "options": {"A": "x", "B": "y"}, "answer_idx": "B", "answer": "y"},
        {"question": "Q2?", "options": {"A": "x", "B": "y"}, "answer_idx": "E"},          # not among options
        {"question": "Q3?", "options": {"A": "x", "B": "y"}, "answer_idx": "A", "answer": "y"},  # text mismatch
        {"question": "Q4?", "options": {"A": "x", "B": ""}, "answer_idx": "A"},           # empty option
        {"question": "Q5?", "options": {"A": "x", "B": "X "}, "answer_idx": "A"},         # duplicate options
    ]
    path = tmp_path / "mcq.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    q = Quarantine()
    good = list(iter_records(path, quarantine=q, duplicate_options="reject"))
    assert [r.question for r in good] == ["Q1?"]
    assert [(e.line, e.field) for e in q.entries] == [(2, "answer_idx"), (3, "answer"), (4, "options.B"), (5, "options")]


def test_csv_parquet_and_chat_formats(tmp_path):
    csv_path = tmp_path / "o1.csv"
    csv_path.write_text('Question,Complex_CoT,Response\n"Q, with comma?",think,Answer one\n,think,\n')
    q = Quarantine()
    assert [r.question for r in iter_records(csv_path, quarantine=q)] == ["Q, with comma?"]
    assert q.entries[0].line == 3
    pq.write_table(pa.Table.from_pylist([GOOD, dict(GOOD, Question="Q2?")]), tmp_path / "o1.parquet")
    assert detect_format(tmp_path / "o1.parquet") == "medical_o1"
    assert len(list(iter_records(tmp_path / "o1.parquet"))) == 2
    chats = [
        {"messages": [{"role": "system", "content": "Be careful."}, {"role": "user", "content": "Q?"},
                      {"role": "assistant", "content": "Final.", "reasoning_content": "Because."}]},
        {"conversations": [{"from": "human", "value": "Q2?"}, {"from": "gpt", "value": "<think>hm</think>B."}]},
        {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                      {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}]},
    ]
    chat = tmp_path / "chat.jsonl"
    chat.write_text("\n".join(json.dumps(c) for c in chats))
    q = Quarantine()
    recs = list(iter_records(chat, quarantine=q))
    assert [(r.question, r.reasoning, r.response) for r in recs] == [("Q?", "Because.", "Final."), ("Q2?", "hm", "B.")]
    assert recs[0].metadata["system_prompt"] == "Be careful." and "multi-turn" in q.entries[0].reason


def test_reasonmed_and_reasoning_detection(tmp_path):
    rm = tmp_path / "rm.jsonl"
    rm.write_text(json.dumps({"conversations": [{"role": "user", "content": "Q?"},
                                                 {"role": "assistant", "content": "## Thinking\nwhy\n## Final Response\nA."}]})
                  + "\n" + json.dumps({"instruction": "Q2?", "input": "", "output": "<think>r</think>Ans."}) + "\n")
    assert detect_format(rm) == "reasonmed"
    assert [(r.reasoning, r.response) for r in iter_records(rm)] == [("why", "A."), ("r", "Ans.")]
    syn = tmp_path / "syn.jsonl"
    syn.write_text(json.dumps({"instruction": "Diagnose.", "input": "45 y/o, chest pain", "reasoning": "ECG...",
                               "output": "STEMI", "task": "diagnosis"}) + "\n")
    assert detect_format(syn) == "reasoning"
    (rec,) = iter_records(syn)
    assert (rec.task, rec.context, rec.answer.text) == ("diagnosis", "45 y/o, chest pain", "STEMI")


def test_file_level_errors(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        iter_records(tmp_path / "missing.jsonl")
    odd = tmp_path / "odd.jsonl"
    odd.write_text(json.dumps({"foo": 1}) + "\n")
    with pytest.raises(DataError, match="cannot detect the format from fields"):
        detect_format(odd)
    with pytest.raises(DataError, match="does not take option"):
        iter_records(odd, "medqa", ids_file="x.json")
    with pytest.raises(DataError, match="unknown file type"):
        detect_format(tmp_path / "x.txt") if (tmp_path / "x.txt").write_text("a") else None


def test_quarantine_given_as_a_path_is_committed_even_on_early_stop(tmp_path):
    path = _dirty_file(tmp_path / "dirty.jsonl")
    qpath = tmp_path / "q" / "quarantine.jsonl"
    stream = iter_records(path, "medical_o1", quarantine=qpath)
    for i, _ in enumerate(stream):
        if i == 1:  # stop after the 2nd good record (line 4): lines 2 and 3 were rejected before it
            break
    stream.close()
    assert [json.loads(x)["line"] for x in qpath.read_text().splitlines()] == [2, 3]
    full = tmp_path / "full.jsonl"
    assert len(list(iter_records(path, "medical_o1", quarantine=full))) == 3
    assert len(full.read_text().splitlines()) == 8
