#!/usr/bin/env bash
# Run the test suite against the real ComfyUI host: `bash scripts/test.sh [pytest args]`.
# scripts/setup.sh is idempotent (a second run only checks), so this is safe to call every time.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# No path given: pytest falls back to `testpaths = ["tests"]` from pyproject.toml.
exec .cache/venv/bin/python -m pytest -q "$@"
