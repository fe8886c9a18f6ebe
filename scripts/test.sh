#!/usr/bin/env bash
# Run the test suite against a real ComfyUI host: `bash scripts/test.sh [--host HOST] [pytest args]`.
# HOST: v0.3.75 (default), 0.33 (needs the tarball, see scripts/hosts.sh) or, with COMFYUI_PATH
# set, that install. scripts/setup.sh is idempotent (a second run only checks), so this is safe
# to call every time.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
. scripts/hosts.sh
host=
if [ "${1:-}" = --host ]; then host=$2; shift 2; fi
ipakit_resolve_host "$host"
bash scripts/setup.sh "$HOST"
export COMFYUI_PATH=$COMFY IPAKIT_HOST=$HOST
echo "[test] host $HOST at $COMFY"
# Paths always lie under tests/, so pytest picks tests/pytest.ini and roots itself there.
[ "$#" -gt 0 ] || set -- tests
exec "$PY" -m pytest -q "$@"
