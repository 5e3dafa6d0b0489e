"""Live servers for serve tests: a real uvicorn on a free loopback port, in a thread, stopped at the end."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def live_server(app: Any, shutdown_s: float = 5.0) -> Iterator[tuple[str, Any]]:
    """(base URL, uvicorn.Server) of ``app`` served on 127.0.0.1 (lifespan on: the backend starts and stops)."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on",
                            timeout_graceful_shutdown=shutdown_s)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.time() + 60
    while not server.started:
        if not thread.is_alive() or time.time() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", server
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


def make_app(model_dir: Any, *, backend: Any = None, **settings: Any) -> Any:
    from medtune.serve.app import create_app
    from medtune.serve.identity import ModelIdentity
    from medtune.serve.settings import ServeSettings

    backend = backend or tiny_backend(model_dir, slots=settings.get("slots", 4), context_length=settings.get("context_length"))
    s = ServeSettings(model=str(model_dir), **{"max_tokens_default": 16, **settings})
    identity = ModelIdentity(backend.served_name, backend.name, str(model_dir), "ab" * 32, "run-test")
    return create_app(s, backend=backend, identity=identity)
