"""Stop sequences, incremental detokenization, the sandboxed chat template, and `medtune chat`."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from serve_helpers import tiny_backend

from medtune import DISCLAIMER
from medtune.cli.chat import chat_loop
from medtune.serve.backends.text import (
    ByteDetokenizer,
    PrefixDetokenizer,
    StopScanner,
    render_chat_template,
)

CHATML = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}" \
         "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"


@pytest.mark.parametrize("pieces", [["Hello\n\nUs", "er: more"], ["Hel", "lo", "\n", "\nUser:", " more"],
                                    ["Hello\n\nUser: more"]])
def test_stop_scanner_cuts_at_the_stop_however_the_text_arrives(pieces):
    s = StopScanner(["\n\nUser:", "###"])
    out = "".join(s.push(p)[0] for p in pieces) + s.flush()
    assert out == "Hello" and s.stopped


def test_stop_scanner_releases_held_text_that_never_becomes_a_stop():
    s = StopScanner(["###"])
    assert s.push("a #")[0] == "a " and s.push("# b")[0] == "## b" and s.flush() == "" and not s.stopped


def test_detokenizers_hold_incomplete_characters(tiny_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    ids = tok("Fièvre 39 °C — SpO₂ 88 %", add_special_tokens=False)["input_ids"]
    d = PrefixDetokenizer(tok)
    assert "".join(d.push(t) for t in ids) + d.flush() == tok.decode(ids)
    raw = "naïve → ok".encode()
    b = ByteDetokenizer(lambda i: raw[i : i + 1])  # one byte per "token": multi-byte characters arrive split
    pieces = [b.push(i) for i in range(len(raw))]
    assert "".join(pieces) + b.flush() == "naïve → ok" and "\ufffd" not in "".join(pieces)


def test_chat_templates_render_in_a_sandbox():
    from jinja2.exceptions import SecurityError

    msgs = [{"role": "user", "content": "Chest pain?"}]
    assert render_chat_template(CHATML, msgs).endswith("Chest pain?<|im_end|>\n<|im_start|>assistant\n")
    evil = "{{ ''.__class__.__mro__[1].__subclasses__() }}"  # CVE-2024-34359's payload shape
    with pytest.raises(SecurityError):
        render_chat_template(evil, msgs)
    with pytest.raises(SecurityError):
        render_chat_template("{% set x = messages.append({'role': 'system'}) %}", msgs)


def test_chat_loop_streams_multi_turn_with_reset(tiny_model_dir):
    backend = tiny_backend(tiny_model_dir, slots=1)
    rendered: list[list[dict]] = []
    prepare = backend.prepare
    backend.prepare = lambda prompt: (rendered.append(list(prompt.messages)), prepare(prompt))[1]
    lines = iter(["Chest pain?", "And fever?", "/reset", "Headache?", None])
    out = io.StringIO()

    async def run() -> int:
        await backend.start()
        try:
            return await chat_loop(backend, system="Be brief.", max_tokens=6, temperature=0.0, read=lambda: next(lines), out=out)
        finally:
            await backend.close()

    assert asyncio.run(run()) == 3
    text = out.getvalue()
    assert text.count(DISCLAIMER) == 1 and "(new conversation)" in text
    assert [len(m) for m in rendered] == [2, 4, 2]  # system + user; + answer + user; reset: system + user
    assert rendered[1][2]["role"] == "assistant" and rendered[2][1]["content"] == "Headache?"


def test_chat_and_serve_commands_fail_cleanly(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[3] / "src"), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-m", "medtune", "chat", str(tmp_path / "missing.gguf")], capture_output=True,
                       text=True, env=env, timeout=120)
    assert r.returncode == 2 and "not found" in r.stderr
    r = subprocess.run([sys.executable, "-m", "medtune", "serve"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2 and "nothing to serve" in r.stderr
    r = subprocess.run([sys.executable, "-m", "medtune", "serve", "x.gguf"], capture_output=True, text=True,
                       env={**env, "MEDTUNE_PORT": "eighty"}, timeout=120)
    assert r.returncode == 2 and "MEDTUNE_PORT" in r.stderr


def test_a_run_folder_serves_what_its_serve_stage_chose(tmp_path):
    """`medtune serve RUN` on a `medtune run` folder: the serve stage's model, else RUN/train; a folder that
    is no model is one clean error, not a tokenizer traceback."""
    from types import SimpleNamespace

    from medtune.serve.backends import BackendError, build_backend, resolve_served_model

    run = tmp_path / "run"
    (run / "stages").mkdir(parents=True)
    with pytest.raises(BackendError, match="no trained model yet"):
        resolve_served_model(str(run))
    (run / "train").mkdir()
    (run / "train" / "manifest.json").write_text("{}")
    assert resolve_served_model(str(run)) == str(run / "train")
    gguf = run / "export" / "m-q4_k_m.gguf"
    from medtune.pipeline.manifest import StageManifest, write_manifest

    write_manifest(run / "stages", StageManifest(stage="serve", status="complete", key="k", section={}, inputs={},
                                                 started="2026-12-02T00:00:00+00:00",
                                                 result={"model": str(gguf), "command": ["medtune", "serve", str(gguf)]}))
    assert resolve_served_model(str(run)) == str(gguf)
    assert resolve_served_model("smollm2-135m") == "smollm2-135m"

    settings = SimpleNamespace(backend="auto", model=str(tmp_path / "notes"), device="cpu")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("not a model")
    with pytest.raises(BackendError, match="not a model medtune can load"):
        build_backend(settings)
