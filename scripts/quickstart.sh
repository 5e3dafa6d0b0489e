#!/usr/bin/env bash
# The main job: install what is needed, then run the whole chain on the embedded model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh "serve"
exec .venv/bin/medtune quickstart "$@"
