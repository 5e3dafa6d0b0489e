"""`medtune chat MODEL`: a terminal chat with a model, in this process (no server).

Streaming answers, multi-turn history, `/reset` to start over, `/quit` (or Ctrl-D) to leave;
the research-use disclaimer is shown once at the start. The model runs on the same backends
as `medtune serve` (a .gguf through llama.cpp, a folder, preset or run through transformers).
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any, TextIO

import typer

from ..config.sections.serve import ServeSection
from .common import fail
from .options import field_option, or_default

HELP = "Type a message and press Enter. /reset starts a new conversation, /quit (or Ctrl-D) leaves."


async def chat_loop(backend: Any, *, system: str | None, max_tokens: int, temperature: float,
                    read: Any = None, out: TextIO | None = None) -> int:
    """Read lines, stream answers; returns the number of answers given. ``read()`` returns a line or None at EOF."""
    from .. import DISCLAIMER
    from ..serve.backends import BackendError, Finished, Piece, Prompt, SamplingParams

    out = out or sys.stdout
    read = read or (lambda: _read_line(out))
    out.write(f"{DISCLAIMER}\nmodel: {backend.served_name} ({backend.name}). {HELP}\n")
    history: list[dict[str, str]] = []
    answers = 0
    while True:
        line = await asyncio.to_thread(read)
        if line is None or line.strip() in ("/quit", "/exit"):
            out.write("\n")
            return answers
        text = line.strip()
        if not text:
            continue
        if text == "/reset":
            history = []
            out.write("(new conversation)\n")
            continue
        history.append({"role": "user", "content": text})
        messages = ([{"role": "system", "content": system}] if system else []) + history
        try:
            prepared = backend.prepare(Prompt(messages=messages))
            room = backend.context_length - prepared.n_tokens if prepared.tokens is not None else max_tokens
            if room < 1:
                raise BackendError(f"the conversation is longer than the context ({backend.context_length} tokens); /reset")
            reply, finish = "", None
            async for event in backend.stream(prepared, SamplingParams(max_tokens=min(max_tokens, room), temperature=temperature)):
                if isinstance(event, Piece):
                    reply += event.text
                    out.write(event.text)
                    out.flush()
                elif isinstance(event, Finished):
                    finish = event.finish_reason
        except BackendError as e:
            history.pop()
            out.write(f"error: {e}\n")
            continue
        out.write("\n" + ("[cut off at --max-tokens]\n" if finish == "length" else ""))
        history.append({"role": "assistant", "content": reply})
        answers += 1


def _read_line(out: TextIO) -> str | None:
    out.write("\n> ")
    out.flush()
    line = sys.stdin.readline()
    return line if line else None


def chat(
    model: str = typer.Argument(..., help=ServeSection.model_fields["model"].description),
    backend: str = field_option("serve.backend"),
    endpoint: str = field_option("serve.endpoint"),
    system: str = typer.Option(None, "--system", help="System message for the conversation."),
    max_tokens: int = typer.Option(512, help="Answer budget per turn."),
    temperature: float = typer.Option(0.0, help="0 = greedy."),
    device: str = field_option("serve.device"),
) -> None:
    """Chat with a model in the terminal (streaming, multi-turn, /reset). Research use only."""
    from ..models.source import ModelLoadError
    from ..serve.backends import BackendError, build_backend

    try:
        settings = ServeSection(model=model, backend=or_default(backend, "serve.backend"), endpoint=endpoint,
                                device=or_default(device, "serve.device"), slots=1, queue_size=0)
        engine, _identity = build_backend(settings)
    except (BackendError, ModelLoadError, ImportError, ValueError) as e:
        fail(str(e))

    async def run() -> None:
        await engine.start()
        try:
            await chat_loop(engine, system=system, max_tokens=max_tokens, temperature=temperature)
        finally:
            await engine.close()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        sys.stdout.write("\n")


def register(app: typer.Typer) -> None:
    app.command("chat")(chat)
