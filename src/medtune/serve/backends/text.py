"""Text around the engines: chat templates (sandboxed), incremental detokenization, stop sequences."""

from __future__ import annotations

import codecs
from collections.abc import Callable, Sequence
from typing import Any


def render_chat_template(template: str, messages: list[dict[str, Any]], *, bos_token: str = "",
                         eos_token: str = "", add_generation_prompt: bool = True) -> str:
    """Render a chat template shipped inside a model file (GGUF metadata) in a sandbox.

    A template is code from the model's author: rendered by a plain Jinja environment it can
    reach Python internals (CVE-2024-34359 in llama-cpp-python). ``ImmutableSandboxedEnvironment``
    refuses attribute access to internals and mutation of the passed objects, as transformers'
    own ``apply_chat_template`` does.
    """
    from jinja2.exceptions import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.globals["raise_exception"] = raise_exception
    return env.from_string(template).render(messages=messages, bos_token=bos_token, eos_token=eos_token,
                                            add_generation_prompt=add_generation_prompt)


class ByteDetokenizer:
    """Token pieces as bytes (llama.cpp) -> text, holding back incomplete UTF-8 sequences."""

    def __init__(self, piece: Callable[[int], bytes]):
        self.piece = piece
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, token: int) -> str:
        return self.decoder.decode(self.piece(token))

    def flush(self) -> str:
        return self.decoder.decode(b"", final=True)


class PrefixDetokenizer:
    """Tokens -> text with a transformers tokenizer: decode everything so far, emit what is new.

    Decoding the whole sequence (rather than token by token) keeps the tokenizer's own joining
    rules (leading spaces, byte-level merges); text ending in U+FFFD is an incomplete character
    and waits for the next token.
    """

    def __init__(self, tokenizer: Any):
        self.tokenizer, self.tokens, self.sent = tokenizer, [], 0

    def _text(self) -> str:
        return self.tokenizer.decode(self.tokens, skip_special_tokens=True)

    def push(self, token: int) -> str:
        self.tokens.append(token)
        text = self._text()
        if text.endswith("\ufffd"):
            return ""
        new, self.sent = text[self.sent :], len(text)
        return new

    def flush(self) -> str:
        text = self._text()
        new, self.sent = text[self.sent :], len(text)
        return new


class StopScanner:
    """Cuts generated text at the first stop sequence; text that may begin one is held back.

    >>> s = StopScanner(["\\n\\nUser:"])
    >>> s.push("Hello\\n"), s.push("\\nUs"), s.push("er: hi")
    (('Hello', False), ('', False), ('', True))
    >>> s.text
    'Hello'
    """

    def __init__(self, stops: Sequence[str]):
        self.stops = [s for s in stops if s]
        self.hold = max((len(s) for s in self.stops), default=1) - 1
        self.buffer, self.text, self.stopped = "", "", False

    def push(self, new: str) -> tuple[str, bool]:
        """Add generated text; returns (text safe to emit now, whether a stop sequence was hit)."""
        if self.stopped:
            return "", True
        self.buffer += new
        hits = [i for i in (self.buffer.find(s) for s in self.stops) if i >= 0]
        if hits:
            out, self.buffer, self.stopped = self.buffer[: min(hits)], "", True
        else:
            cut = max(0, len(self.buffer) - self.hold)
            while cut < len(self.buffer) and not any(s.startswith(self.buffer[cut:]) for s in self.stops):
                cut += 1  # the held tail is kept only while it can still grow into a stop sequence
            out, self.buffer = self.buffer[:cut], self.buffer[cut:]
        self.text += out
        return out, self.stopped

    def flush(self) -> str:
        """The held-back text once generation has ended without a stop sequence."""
        out, self.buffer = ("" if self.stopped else self.buffer), ""
        self.text += out
        return out
