"""The main job: run the shipped SD1.5 image-prompt workflow through a real ComfyUI server.

    bash scripts/main_job.sh [--models DIR] [--image REF.png] [--steps N] [--size PX] [--seed S]

Real models are used when found in a ComfyUI `models/` folder given by `--models DIR` or the
`IPAKIT_MODELS` environment variable. It needs one file of each (first name found wins):

  DIR/checkpoints/  an SD1.5 checkpoint: v1-5-pruned-emaonly-fp16.safetensors,
                    v1-5-pruned-emaonly.safetensors, v1-5-pruned-emaonly.ckpt,
                    v1-5-pruned.safetensors (or --checkpoint NAME)
  DIR/clip_vision/  ViT-H: CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors, clip_vision_h.safetensors,
                    model.safetensors (or --clip-vision NAME)
  DIR/ipadapter/    ip-adapter_sd15.safetensors, ip-adapter_sd15.bin,
                    ip-adapter-plus_sd15.safetensors, ip-adapter-plus_sd15.bin (or --adapter NAME)

Without a models folder it generates tiny random-weight models (tests/support/host_models.py),
says so, and the image is noise: that run proves the plumbing, not the picture.
The server's base directory is `output/main-job/` (git-ignored); the image lands in its output/.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from support import workflow_format as wf  # noqa: E402
from support.server import ComfyServer  # noqa: E402

log = logging.getLogger("main_job")
WANTED = {
    "checkpoints": ["v1-5-pruned-emaonly-fp16.safetensors", "v1-5-pruned-emaonly.safetensors",
                    "v1-5-pruned-emaonly.ckpt", "v1-5-pruned.safetensors"],
    "clip_vision": ["CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors", "clip_vision_h.safetensors",
                    "model.safetensors"],
    "ipadapter": ["ip-adapter_sd15.safetensors", "ip-adapter_sd15.bin",
                  "ip-adapter-plus_sd15.safetensors", "ip-adapter-plus_sd15.bin"],
}
REFERENCE = "ipakit_reference.png"


def find_real_models(models: Path, overrides: dict) -> dict[str, Path]:
    """Folder -> file for each needed model; exits with a list of what is missing."""
    found, missing = {}, []
    for folder, names in WANTED.items():
        names = [overrides[folder]] if overrides.get(folder) else names
        hit = next((models / folder / n for n in names if (models / folder / n).is_file()), None)
        if hit:
            found[folder] = hit
        else:
            missing.append(f"{models / folder}/ one of {', '.join(names)}")
    if missing:
        sys.exit("Real models requested but not found:\n  " + "\n  ".join(missing)
                 + "\n(drop --models / IPAKIT_MODELS to run with random models instead)")
    return found


def link_models(found: dict[str, Path], models_dir: Path) -> dict[str, str]:
    """Make the chosen real files visible in the server's models folder (symlinks)."""
    names = {}
    for folder, path in found.items():
        dst = models_dir / folder / path.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if dst.is_symlink() or dst.exists():
            dst.unlink()
        dst.symlink_to(path.resolve())
        names[folder] = path.name
    return names


def write_reference(src: str | None, input_dir: Path) -> None:
    if src:
        from PIL import Image
        Image.open(src).convert("RGB").save(input_dir / REFERENCE)
        return
    from support.host_models import write_reference_image
    write_reference_image(input_dir, REFERENCE)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default=os.environ.get("IPAKIT_MODELS"),
                   help="a ComfyUI models/ folder with real models (env IPAKIT_MODELS)")
    p.add_argument("--checkpoint", help="file name in DIR/checkpoints (SD1.5)")
    p.add_argument("--clip-vision", help="file name in DIR/clip_vision (ViT-H)")
    p.add_argument("--adapter", help="file name in DIR/ipadapter (an SD1.5 adapter)")
    p.add_argument("--image", help="reference image (default: a synthetic test pattern)")
    p.add_argument("--steps", type=int, help="sampler steps (default 30 real / 4 random)")
    p.add_argument("--size", type=int, help="image size in px (default 512 real / 256 random)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--weight", type=float, default=0.8)
    p.add_argument("--base", default=str(REPO / "output" / "main-job"),
                   help="ComfyUI base directory for the server (kept)")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="[main_job] %(message)s")

    base = Path(args.base)
    (base / "models").mkdir(parents=True, exist_ok=True)
    (base / "input").mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    if args.models:
        found = find_real_models(Path(args.models).expanduser(), {
            "checkpoints": args.checkpoint, "clip_vision": args.clip_vision, "ipadapter": args.adapter})
        names = link_models(found, base / "models")
        ckpt, clip, adapter = names["checkpoints"], names["clip_vision"], names["ipadapter"]
        steps, size = args.steps or 30, args.size or 512
        log.info("using REAL models from %s: %s, %s, %s", args.models, ckpt, clip, adapter)
    else:
        from support.host_models import prepare_models
        log.warning("no real models given (--models DIR or IPAKIT_MODELS): generating tiny RANDOM-weight "
                    "models -- the image will be NOISE; this run only proves the workflow runs end to end")
        names = prepare_models(base / "models", which=("sd15",))
        ckpt, clip, adapter = names["checkpoint"], names["clip_vision"], names["ipadapter"]
        steps, size = args.steps or 4, args.size or 256
        log.info("random models ready in %.1f s (cached in .cache/models/)", time.time() - t0)
    write_reference(args.image, base / "input")

    api = json.loads((REPO / "workflows" / "api" / "sd15_image_prompt.json").read_text())
    api = wf.set_inputs(api, "CheckpointLoaderSimple", ckpt_name=ckpt)
    api = wf.set_inputs(api, "CLIPVisionLoader", clip_name=clip)
    api = wf.set_inputs(api, "IPAKitAdapterLoader", adapter_name=adapter)
    api = wf.set_inputs(api, "IPAKitApply", weight=args.weight)
    api = wf.set_inputs(api, "LoadImage", image=REFERENCE)
    api = wf.set_inputs(api, "EmptyLatentImage", width=size, height=size)
    api = wf.set_inputs(api, "KSampler", steps=steps, seed=args.seed)

    t1 = time.time()
    with ComfyServer(base=base, start_timeout=180) as srv:
        log.info("server up at %s in %.1f s (log: %s)", srv.url, time.time() - t1, srv.log_path)
        t2 = time.time()
        entry = srv.wait_for(srv.post_prompt(api), timeout=3600)
        images = srv.output_files(entry)
        log.info("workflow ran in %.1f s (%d steps, %d px)", time.time() - t2, steps, size)
    for path in images:
        print(path)
    if not images or not all(p.is_file() for p in images):
        sys.exit("no image was written")


if __name__ == "__main__":
    main()
