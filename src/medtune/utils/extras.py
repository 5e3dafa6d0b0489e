"""Optional dependencies: which extra installs each one, and the one-line hint that says so.

A core install (``pip install medtune``) runs synth, data, train and eval; these modules are
imported only inside the feature that needs them, and a missing one is reported with
``install_hint`` through that feature's own error (exit 2 from the CLI), never a traceback.
tests/unit/utils/test_core_install.py runs the core commands with all of them blocked.
"""

from __future__ import annotations

# module -> extra in pyproject.toml [project.optional-dependencies]
EXTRA_OF = {
    "llama_cpp": "gguf",
    "openai": "serve",
    "fastapi": "serve",
    "uvicorn": "serve",
    "bitsandbytes": "gpu",
    "vllm": "vllm",
    "playwright": "dev",
}


def install_hint(module: str) -> str:
    """The pip command that installs an optional module.

    >>> install_hint("llama_cpp")
    "pip install 'medtune[gguf]'"
    """
    return f"pip install 'medtune[{EXTRA_OF[module]}]'"
