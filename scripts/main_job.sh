#!/usr/bin/env bash
# The main job (see README): set up the host (idempotent), then run the SD1.5 image-prompt
# workflow through a real ComfyUI server and print the written image's path.
# Args go to scripts/main_job.py: --models DIR (or IPAKIT_MODELS=DIR) for real models.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .cache/venv/bin/python scripts/main_job.py "$@"
