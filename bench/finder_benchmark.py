"""Finding models by their weights and re-running a graph with another weight, measured in one run.

1. A models folder of 50 adapter and encoder files with the released key sets and shapes, at their
   real sizes, written sparse (no data): the 11 adapter layouts in both formats, the 10 FaceID
   variants (.bin, LoRA included), community files (noob IPA, composition), the three encoders in
   the transformers (= ComfyUI) layout and in open_clip's (.safetensors and .bin, text tower
   included), and copies under other names and in subfolders. `.bin` files are torch's zip format
   with the data space reserved and unwritten (`torch.serialization.skip_data`). Time to list and
   identify all of them: cold (this pack's caches emptied; the OS file cache is warm after the first
   round) and cached (nothing read).
2. A graph run by ComfyUI's own executor (in process, as main.py's prompt worker runs it): a
   real-architecture SD1.5 UNet -> IP-Adapter Unified Loader (Kit) (PLUS; it finds a real-size SD1.5
   plus adapter and the real-size ViT-H by their weights) -> Apply IP-Adapter Advanced (Kit) <-
   core's LoadImage. Each round loads a new reference (the first run: LoadImage, the ViT-H encode
   and the apply) and then runs the same graph with only the weight changed (the executor re-runs
   the apply node alone; the features come from the content cache). Loading the models happens in a
   warm-up run and is in neither time. The UNet's weights are allocated but never filled: nothing
   samples it, the apply only reads its layer table (the UNet's forward is bench/benchmark.py's).
3. Face analysis (real insightface on generated ONNX models) across weight changes.

    .cache/host-v0.3.75/venv/bin/python bench/finder_benchmark.py [--rounds 3]
"""
import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import host  # noqa: E402


# --------------------------------------------------------------------------- 1. the models folder
def make_folder(root: Path) -> list[Path]:
    """The 50 files, sparse at their real sizes (fp16, as released)."""
    from support.checkpoints import FACEID_VARIANTS, VARIANTS
    from support.sparse import write_sparse_bin, write_sparse_safetensors
    from test_finder import REAL_ENCODERS, encoder_shapes, real_adapter_shapes, real_faceid_shapes
    adapters, encoders = root / "ipadapter", root / "clip_vision"
    files = []

    def adapter(shapes: dict, path: Path):
        if path.suffix == ".bin":
            write_sparse_bin(shapes, path)
        else:
            write_sparse_safetensors({f"{g}.{k}": s for g, sub in shapes.items() for k, s in sub.items()}, path)
        files.append(path)

    def encoder(shapes: dict, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        (write_sparse_bin if path.suffix == ".bin" else write_sparse_safetensors)(shapes, path)
        files.append(path)

    adapters.mkdir(parents=True)
    for variant in [*VARIANTS, "kolors_plus"]:  # 22: every layout in both formats
        for ext in (".bin", ".safetensors"):
            adapter(real_adapter_shapes(variant), adapters / f"ip-adapter_{variant}{ext}")
    for variant in [*FACEID_VARIANTS, "kolors_faceid-plus"]:  # 10: FaceID, released as .bin
        adapter(real_faceid_shapes(variant), adapters / f"ip-adapter-{variant}.bin")
    for name, variant in (("noobIPAMARK1_mark1.safetensors", "sdxl"),  # 3: community files
                          ("ip_plus_composition_sd15.safetensors", "sd15_plus"),
                          ("ip_plus_composition_sdxl.safetensors", "sdxl_plus_vit-h")):
        adapter(real_adapter_shapes(variant), adapters / name)
    for name, variant in (("my-favourite.safetensors", "sd15_plus"),  # 3: renamed copies
                          ("old/ip-adapter_sd15_light_v11.bin", "sd15_light"),
                          ("Kolors-IP-Adapter-Plus.safetensors", "kolors_plus")):
        (adapters / name).parent.mkdir(parents=True, exist_ok=True)
        adapter(real_adapter_shapes(variant), adapters / name)
    for name in REAL_ENCODERS:  # 9: each encoder in the transformers layout and open_clip's two formats
        encoder(encoder_shapes(name, "transformers"), encoders / name / "model.safetensors")
        open_clip = encoder_shapes(name, "open_clip")
        encoder(open_clip, encoders / name / "open_clip_pytorch_model.safetensors")
        encoder(open_clip, encoders / name / "open_clip_pytorch_model.bin")
    for name, rel in (("ViT-H-14", "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors"),  # 3: as users name them
                      ("ViT-H-14", "models/image_encoder/model.safetensors"),
                      ("ViT-bigG-14", "sdxl_models/image_encoder/model.safetensors")):
        encoder(encoder_shapes(name, "transformers"), encoders / rel)
    return files


def identification(root: Path, rounds: int = 5) -> None:
    import folder_paths
    from comfyui_ipadapter_kit.ip_models import headers, identify
    from comfyui_ipadapter_kit.patching import finder
    files = make_folder(root)
    for folder in ("ipadapter", "clip_vision"):
        folder_paths.folder_names_and_paths[folder] = ([str(root / folder)], {".safetensors", ".bin"})
    cold, cached = [], []
    for _ in range(rounds):
        headers._cache.clear()
        identify._identities.clear()
        folder_paths.filename_list_cache.clear()
        parsed = headers.stats["parsed"]
        start = time.perf_counter()
        found = finder.scan("ipadapter") + finder.scan("clip_vision")
        cold.append(time.perf_counter() - start)
        assert headers.stats["parsed"] - parsed == len(files)
        start = time.perf_counter()
        finder.scan("ipadapter") + finder.scan("clip_vision")
        cached.append(time.perf_counter() - start)
    kinds = {k: sum(f.kind == k for f in found) for k in ("adapter", "clip_vision", "unknown")}
    size = sum(p.stat().st_size for p in files)
    on_disk = sum(p.stat().st_blocks * 512 for p in files)
    by_ext = {ext: sum(p.suffix == ext for p in files) for ext in (".bin", ".safetensors")}
    print(f"{len(files)} files ({by_ext['.bin']} .bin, {by_ext['.safetensors']} .safetensors), "
          f"{size / 2 ** 30:.2f} GiB as their sizes say ({on_disk / 2 ** 20:.1f} MiB on disk): identified {kinds}")
    print(f"list + identify, cold: {1000 * statistics.median(cold):.1f} ms (range {1000 * min(cold):.1f}-"
          f"{1000 * max(cold):.1f}), cached: {1000 * statistics.median(cached):.2f} ms, median of {rounds}")


# --------------------------------------------------------------------------- 2. the graph
class BenchUNet:
    """The connected MODEL (bench only): a real-architecture SD1.5 UNet, never sampled here."""
    unet = None
    CATEGORY = "bench"
    RETURN_TYPES = ("MODEL",)
    FUNCTION = "get"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    def get(self):
        return (BenchUNet.unet,)


class BenchSink:
    """An output node for the patched MODEL (bench only), so the executor runs the graph up to it."""
    CATEGORY = "bench"
    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "take"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",)}}

    def take(self, model):
        assert model.model_options["transformer_options"]["patches_replace"]["attn2"]
        return {}


def unfilled_sd15_unet():
    import comfy.model_patcher
    import comfy.supported_models
    from benchmark import SD15_UNET
    config = comfy.supported_models.SD15(dict(SD15_UNET))
    config.set_inference_dtype(torch.float32, None)
    cpu = torch.device("cpu")
    return comfy.model_patcher.ModelPatcher(config.get_model({}).eval(), load_device=cpu, offload_device=cpu)


def graph(image: str, weight: float) -> dict:
    return {
        "1": {"class_type": "IPAKitBenchUNet", "inputs": {}},
        "2": {"class_type": "IPAKitUnifiedLoader", "inputs": {"model": ["1", 0], "preset": "PLUS (high strength)"}},
        "3": {"class_type": "LoadImage", "inputs": {"image": image}},
        "4": {"class_type": "IPAKitApplyAdvanced", "inputs": {
            "model": ["2", 0], "ipadapter": ["2", 1], "clip_vision": ["2", 2], "image": ["3", 0], "weight": weight,
            "weight_type": "linear", "combine_embeds": "concat", "start_at": 0.0, "end_at": 1.0,
            "embeds_scaling": "V only"}},
        "5": {"class_type": "IPAKitBenchSink", "inputs": {"model": ["4", 0]}},
    }


def rerun(root: Path, pack, rounds: int):
    import folder_paths
    import numpy as np
    from PIL import Image
    from comfyui_ipadapter_kit.patching import finder
    from comfyui_ipadapter_kit.patching.layers import cross_attention_layers
    from support.checkpoints import make_adapter_state_dict, save_adapter
    from support.host_models import prepare_models
    from support.inprocess import InProcessHost
    nodes = host.init_builtin_nodes()
    for name, cls in pack.NODE_CLASS_MAPPINGS.items():
        nodes.NODE_CLASS_MAPPINGS.setdefault(name, cls)
    nodes.NODE_CLASS_MAPPINGS.update(IPAKitBenchUNet=BenchUNet, IPAKitBenchSink=BenchSink)
    BenchUNet.unet = unfilled_sd15_unet()
    widths = [l.width for l in cross_attention_layers(BenchUNet.unet.model.diffusion_model)]
    models = root / "real-models"
    clip_name = prepare_models(models, which=(), adapters=False)["clip_vision"]  # real-size ViT-H, random weights
    (models / "ipadapter").mkdir(parents=True, exist_ok=True)
    save_adapter(make_adapter_state_dict("sd15_plus", widths), models / "ipadapter" / "renamed-plus.safetensors")
    for folder in ("ipadapter", "clip_vision"):
        folder_paths.folder_names_and_paths[folder] = ([str(models / folder)], {".safetensors", ".bin"})
    folder_paths.filename_list_cache.clear()
    executor = InProcessHost()
    inputs = Path(folder_paths.get_input_directory())

    def reference(index: int) -> str:
        rng = np.random.default_rng(index)
        Image.fromarray(rng.integers(0, 256, (512, 512, 3), dtype=np.uint8)).save(inputs / f"bench-{index}.png")
        return f"bench-{index}.png"

    forwards = []
    start = time.perf_counter()
    executor.run(graph(reference(0), 1.0))  # warm-up: loads the adapter and the encoder
    print(f"warm-up run (finds and loads {clip_name} and the adapter): {time.perf_counter() - start:.1f} s")
    clip = next(model for (kind, *_), model in finder._loaded.items() if kind == "clip_vision")
    clip.model.register_forward_pre_hook(lambda module, args: forwards.append(1))
    firsts, reruns, rerun_forwards = [], [], 0
    for index in range(1, rounds + 1):
        image = reference(index)
        start = time.perf_counter()
        executor.run(graph(image, 1.0))
        firsts.append(time.perf_counter() - start)
        before = len(forwards)
        start = time.perf_counter()
        executor.run(graph(image, 0.6))
        reruns.append(time.perf_counter() - start)
        rerun_forwards += len(forwards) - before
    first, again = statistics.median(firsts), statistics.median(reruns)
    print(f"graph through ComfyUI's executor (real-size ViT-H, SD1.5 plus adapter, real SD1.5 UNet), median of "
          f"{rounds}: first run with a new reference {first:.3f} s, re-run with only the weight changed "
          f"{1000 * again:.1f} ms: ratio {again / first:.4f} (CLIP vision forwards in the re-runs: {rerun_forwards})")


# --------------------------------------------------------------------------- 3. faces
def faces(root: Path):
    import folder_paths
    from comfyui_ipadapter_kit.patching import faceid
    from comfyui_ipadapter_kit.patching.adapter_handle import load_adapter
    from comfyui_ipadapter_kit.patching.layers import cross_attention_layers
    from support.checkpoints import make_adapter_state_dict, save_adapter
    from support.onnx_faces import make_model_folder
    unet = BenchUNet.unet or unfilled_sd15_unet()
    widths = [l.width for l in cross_attention_layers(unet.model.diffusion_model)]
    folder_paths.folder_names_and_paths["insightface"] = ([str(make_model_folder(root / "insightface"))], {".onnx"})
    face_model = faceid.insightface_model("buffalo_l")
    face_adapter = load_adapter(str(save_adapter(make_adapter_state_dict("faceid_sd15", widths), root / "faceid.bin")))
    portrait = torch.rand(1, 512, 384, 3, generator=torch.Generator().manual_seed(9)) * 0.5 + 0.5
    before, start = faceid.stats["analyses"], time.perf_counter()
    for weight in (0.4, 0.8, 1.2):
        found = faceid.analyze_faces(face_model, portrait.clone())
        faceid.apply_faceid(unet, face_adapter, found, weight=weight)
    print(f"face analysis over 3 weight changes: {faceid.stats['analyses'] - before} run(s), "
          f"{time.perf_counter() - start:.2f} s in all")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="graph rounds (each encodes a new reference)")
    args = parser.parse_args()
    host.import_comfy()
    pack = host.load_pack()
    root = Path(tempfile.mkdtemp(prefix="ipakit-finder-bench-"))
    try:
        identification(root / "scan")
        rerun(root, pack, args.rounds)
        faces(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
