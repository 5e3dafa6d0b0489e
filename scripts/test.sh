#!/usr/bin/env bash
# The test suite: install what is needed (llama-cpp-python compiles once, ~9 min), then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh "dev,serve,gguf"
# Browser tests (report, web page) drive Debian's Chromium through Playwright; Playwright's own
# browser download cannot work offline.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  apt-get install -y -q chromium >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }
fi
.venv/bin/ruff check src tests bench
exec .venv/bin/python -m pytest "$@"
