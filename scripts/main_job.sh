#!/usr/bin/env bash
# The main job (see README): set up the host (idempotent), then run the SD1.5 image-prompt
# workflow through a real ComfyUI server and print the written image's path.
# Args go to scripts/main_job.py: --models DIR (or IPAKIT_MODELS=DIR) for real models.
# IPAKIT_HOST=0.33 (or COMFYUI_PATH=...) runs it on another host (see scripts/hosts.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
. scripts/hosts.sh
ipakit_resolve_host
bash scripts/setup.sh "$HOST"
export COMFYUI_PATH=$COMFY
exec "$PY" scripts/main_job.py "$@"
