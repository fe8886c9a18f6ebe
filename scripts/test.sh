#!/usr/bin/env bash
# Run the test suite against the real ComfyUI host: `bash scripts/test.sh [pytest args]`.
# scripts/setup.sh is idempotent (a second run only checks), so this is safe to call every time.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Paths always lie under tests/, so pytest picks tests/pytest.ini and roots itself there.
[ "$#" -gt 0 ] || set -- tests
exec .cache/venv/bin/python -m pytest -q "$@"
