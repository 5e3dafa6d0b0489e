#!/usr/bin/env bash
# The test suite: install what is needed (llama-cpp-python compiles once, ~9 min), then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh "dev,serve,gguf"
.venv/bin/ruff check src tests bench
exec .venv/bin/python -m pytest "$@"
