"""Live servers for serve tests: a real uvicorn on a free loopback port, in a thread, stopped at the end."""

from __future__ import annotations

import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def live_server(app: Any, shutdown_s: float = 5.0, **uvicorn_options: Any) -> Iterator[tuple[str, Any]]:
    """(base URL, uvicorn.Server) of ``app`` served on 127.0.0.1 (lifespan on: the backend starts and stops).

    ``ssl_certfile``/``ssl_keyfile`` among ``uvicorn_options`` serve HTTPS (the URL says so)."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on",
                            timeout_graceful_shutdown=shutdown_s, **uvicorn_options)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.time() + 60
    while not server.started:
        if not thread.is_alive() or time.time() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        scheme = "https" if uvicorn_options.get("ssl_certfile") else "http"
        yield f"{scheme}://127.0.0.1:{port}", server
    finally:
        server.should_exit = True
        thread.join(shutdown_s + 30)
        sock.close()


def tiny_backend(model_dir: Any, *, slots: int = 4, context_length: int | None = None, served_name: str = "tiny",
                 scale: float = 0.3) -> Any:
    """The transformers backend on the tiny test model (random weights made lively: varied tokens)."""
    from tiny import lively
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from medtune.serve.backends.hf import TransformersBackend

    model = lively(AutoModelForCausalLM.from_pretrained(model_dir), scale=scale)
    tok = AutoTokenizer.from_pretrained(model_dir)
    return TransformersBackend(model, tok, served_name=served_name, slots=slots, context_length=context_length,
                               reasoning_format="sections")


ROLES = ("clinician", "auditor", "admin", "monitor")


def security_section(folder: Path, **overrides: Any) -> Any:
    """A security section whose key store, audit log and secrets all live under ``folder`` (never ~)."""
    from medtune.config.sections.security import SecuritySection

    values = {"keys_file": str(folder / "secrets" / "keys.json"), "audit_dir": str(folder / "audit"),
              "audit_hmac_key": str(folder / "secrets" / "audit-hmac.key"),
              "audit_signing_key": str(folder / "secrets" / "audit-signing.pem"), "phi_presidio": False,
              "requests_per_minute": 100_000, "tokens_per_minute": 10_000_000, **overrides}
    return SecuritySection(**values)


def make_app(model_dir: Any, *, backend: Any = None, identity: Any = None, security: dict[str, Any] | None = None,
             folder: Path | None = None, **settings: Any) -> Any:
    """An app on the tiny model with its own key store and audit log (in ``folder``, default a fresh temp dir)
    and one key per role, kept for the tests in ``app.state.test_keys`` (see :func:`auth`)."""
    from medtune.security.keys import KeyStore
    from medtune.serve.app import create_app
    from medtune.serve.identity import ModelIdentity
    from medtune.serve.settings import ServeSettings

    folder = Path(folder or tempfile.mkdtemp(prefix="medtune-serve-"))
    sec = security_section(folder, **(security or {}))
    store = KeyStore(sec.keys_file)
    keys = {role: store.create(f"test-{role}", role)[0] for role in ROLES}
    backend = backend or tiny_backend(model_dir, slots=settings.get("slots", 4), context_length=settings.get("context_length"))
    s = ServeSettings(security=sec, **{"model": str(model_dir), "max_tokens_default": 16, **settings})
    identity = identity or ModelIdentity(backend.served_name, backend.name, str(model_dir), "ab" * 32, "run-test")
    app = create_app(s, backend=backend, identity=identity)
    app.state.test_keys = keys
    return app


def auth(app: Any, role: str = "clinician") -> dict[str, str]:
    """The Authorization header of ``app``'s test key for ``role``."""
    return {"Authorization": f"Bearer {app.state.test_keys[role]}"}


# A chat template that refuses what Mistral's and Gemma's refuse: a system turn, roles that do not alternate.
ALTERNATING_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% else %}{{ message['content'] + eos_token }}{% endif %}{% endfor %}")
CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


async def answer_script(prepared: Any, params: Any) -> Any:
    """The stub's default generation: every sample answers "The answer is (A)." in two pieces."""
    from medtune.serve.backends import Finished, Piece

    for i in range(params.n):
        yield Piece(i, "The answer is ")
        yield Piece(i, "(A).")
        yield Finished(i, "stop", 2)


def stub_backend(script: Any = answer_script, template: str = CHATML, served_name: str = "tiny") -> Any:
    """A backend with no model: chat messages rendered by ``template`` in the llama.cpp backend's sandbox
    (``render_chat_template``), one token per word, and ``script(prepared, params)`` (an async generator of
    Piece/Finished events; it may raise) as the generation. No log-likelihoods (as behind an upstream)."""
    from medtune.serve.backends.base import EngineBackend
    from medtune.serve.backends.text import render_chat_template

    class StubBackend(EngineBackend):
        name = "stub"
        supports_loglik = False

        def __init__(self) -> None:
            super().__init__(served_name=served_name, context_length=1024, parallel=4, reasoning_format="sections")

        async def start(self) -> None:
            pass

        async def close(self) -> None:
            pass

        @property
        def load(self) -> int:
            return 0

        def render(self, prompt: Any) -> str:
            return render_chat_template(template, prompt.messages) if prompt.messages is not None else prompt.text or ""

        def encode(self, text: str) -> list[int]:
            return list(range(len(text.split())))

        def detokenizer(self) -> Any:
            raise NotImplementedError

        def token_bytes(self, token: int) -> bytes:
            return b""

        async def stream(self, prepared: Any, params: Any) -> Any:
            async for event in script(prepared, params):
                yield event

    return StubBackend()
