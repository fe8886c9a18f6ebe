"""Finding models by their weights and re-running with another weight, measured in one run.

1. A models folder of 50 files with the released key sets and shapes (11 adapter layouts in both
   formats, the three encoders in both layouts, unrelated files; sparse, so no data is written):
   time to list and identify all of them, cold (headers read) and cached (nothing read).
2. A real-size ViT-H (random weights) and an SD1.5 plus adapter on the real SD1.5 UNet: the first
   encode-and-apply of a reference against applying it again with only the weight changed.

    .cache/host-v0.3.75/venv/bin/python bench/finder_benchmark.py
"""
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import host  # noqa: E402


def make_folder(root: Path) -> int:
    from support.checkpoints import VARIANTS
    from test_finder import encoder_shapes, write_adapter, REAL_ENCODERS
    (root / "ipadapter").mkdir(parents=True)
    (root / "clip_vision").mkdir()
    count = 0
    for variant in [*VARIANTS, "kolors_plus"]:
        for ext in (".bin", ".safetensors"):
            write_adapter(variant, root / "ipadapter" / f"{variant}-{count}{ext}")
            count += 1
    from support.sparse import write_sparse_safetensors
    for name in REAL_ENCODERS:
        for layout in ("transformers", "open_clip"):
            write_sparse_safetensors(encoder_shapes(name, layout), root / "clip_vision" / f"{name}-{layout}.safetensors")
            count += 1
    while count < 50:  # files that are neither (LoRAs, notes) still have to be looked at
        write_sparse_safetensors({f"lora_unet_{i}.lora_down.weight": (8, 320) for i in range(64)},
                                 root / "ipadapter" / f"not-an-adapter-{count}.safetensors")
        count += 1
    return count


def main():
    host.import_comfy()
    host.load_pack()
    import folder_paths
    from comfyui_ipadapter_kit.ip_models import headers, identify
    from comfyui_ipadapter_kit.patching import finder

    root = Path(tempfile.mkdtemp(prefix="ipakit-finder-bench-"))
    count = make_folder(root)
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    for folder in ("ipadapter", "clip_vision"):
        folder_paths.folder_names_and_paths[folder] = ([str(root / folder)], {".safetensors", ".bin"})
    cold, warm = [], []
    for _ in range(5):
        headers._cache.clear()
        identify._identities.clear()
        folder_paths.filename_list_cache.clear()
        start = time.perf_counter()
        found = finder.scan("ipadapter") + finder.scan("clip_vision")
        cold.append(time.perf_counter() - start)
        start = time.perf_counter()
        finder.scan("ipadapter") + finder.scan("clip_vision")
        warm.append(time.perf_counter() - start)
    kinds = {k: sum(f.kind == k for f in found) for k in ("adapter", "clip_vision", "unknown")}
    print(f"{count} files ({size / 2 ** 30:.1f} GiB as sizes, sparse): identified {kinds}")
    print(f"list + identify, cold: {1000 * statistics.median(cold):.1f} ms  cached: {1000 * statistics.median(warm):.1f} ms")

    from benchmark import build_unet
    from comfyui_ipadapter_kit.patching.adapter_handle import load_adapter
    from comfyui_ipadapter_kit.patching.apply import apply_adapter
    from comfyui_ipadapter_kit.patching.clip_loader import load_clip_vision
    from comfyui_ipadapter_kit.patching.layers import cross_attention_layers
    from support.checkpoints import make_adapter_state_dict, save_adapter
    from support.host_models import prepare_models
    unet = build_unet()
    widths = [l.width for l in cross_attention_layers(unet.model.diffusion_model)]
    names = prepare_models(root / "models", which=())
    clip = load_clip_vision(str(root / "models" / "clip_vision" / names["clip_vision"]))
    adapter = load_adapter(str(save_adapter(make_adapter_state_dict("sd15_plus", widths), root / "plus.safetensors")))
    firsts, reruns = [], []
    for round_index in range(3):
        image = torch.rand(1, 512, 512, 3, generator=torch.Generator().manual_seed(round_index))
        start = time.perf_counter()
        apply_adapter(unet, adapter, clip, image, weight=1.0)
        firsts.append(time.perf_counter() - start)
        start = time.perf_counter()
        apply_adapter(unet, adapter, clip, image.clone(), weight=0.6, weight_type="ease in")
        reruns.append(time.perf_counter() - start)
    first, rerun = statistics.median(firsts), statistics.median(reruns)
    print(f"real-size ViT-H + SD1.5 plus adapter: first encode-and-apply {first:.3f} s, again with another weight "
          f"{rerun:.3f} s: ratio {rerun / first:.3f}")

    # Face analysis (real insightface on generated models) across weight changes: once per distinct image.
    from comfyui_ipadapter_kit.patching import faceid
    from support.onnx_faces import make_model_folder
    folder_paths.folder_names_and_paths["insightface"] = ([str(make_model_folder(root / "insightface"))], {".onnx"})
    face_model = faceid.insightface_model("buffalo_l")
    face_adapter = load_adapter(str(save_adapter(make_adapter_state_dict("faceid_sd15", widths), root / "faceid.bin")))
    portrait = torch.rand(1, 512, 384, 3, generator=torch.Generator().manual_seed(9)) * 0.5 + 0.5
    before, start = faceid.stats["analyses"], time.perf_counter()
    for weight in (0.4, 0.8, 1.2):
        faces = faceid.analyze_faces(face_model, portrait.clone())
        faceid.apply_faceid(unet, face_adapter, faces, weight=weight)
    print(f"face analysis over 3 weight changes: {faceid.stats['analyses'] - before} run(s), "
          f"{time.perf_counter() - start:.2f} s in all")


if __name__ == "__main__":
    main()
