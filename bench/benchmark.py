"""Per-step cost of the patch against the unpatched model, measured in one run.

A real-architecture SD1.5 UNet (860M parameters, random weights) samples a 256x256 image (32x32
latent) with CFG on the CPU; the same run times the unpatched model and the model patched with a
standard and a plus adapter (and with weight 0, and with a start/end window).

Each round samples two steps with every model, in a rotating order, and times the second step
between two sampler callbacks (model loading and the first step, which fills the K/V caches, are
left out). The ratio to unpatched is taken within a round, so slow drifts of a shared machine
cancel; the median over rounds is printed with its spread, for wall-clock time and for the
process's CPU time (less disturbed by other tenants of a shared machine). The FLOP ratio of one
step (counted by torch, independent of the machine) is printed beside them.

    .cache/host-v0.3.75/venv/bin/python bench/benchmark.py [--rounds 8]   (or .cache/host-0.33/...)
"""
import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import host  # noqa: E402

SD15_UNET = {
    "use_checkpoint": False, "image_size": 32, "out_channels": 4, "use_spatial_transformer": True, "legacy": False,
    "adm_in_channels": None, "in_channels": 4, "model_channels": 320, "num_res_blocks": [2, 2, 2, 2],
    "transformer_depth": [1, 1, 1, 1, 1, 1, 0, 0], "channel_mult": [1, 2, 4, 4], "transformer_depth_middle": 1,
    "use_linear_in_transformer": False, "context_dim": 768, "num_heads": 8, "num_head_channels": -1,
    "transformer_depth_output": [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
    "use_temporal_attention": False, "use_temporal_resblock": False,
}


def build_unet():
    import comfy.model_patcher
    import comfy.supported_models
    from support.tiny_unets import fill_deterministic
    config = comfy.supported_models.SD15(dict(SD15_UNET))
    config.set_inference_dtype(torch.float32, None)
    model = config.get_model({})
    fill_deterministic(model.diffusion_model, seed=0)
    cpu = torch.device("cpu")
    return comfy.model_patcher.ModelPatcher(model.eval(), load_device=cpu, offload_device=cpu)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()

    host.import_comfy()
    host.load_pack()
    from comfyui_ipadapter_kit.patching.adapter_handle import load_adapter
    from comfyui_ipadapter_kit.patching.apply import apply_adapter
    from comfyui_ipadapter_kit.patching.layers import cross_attention_layers
    from support.checkpoints import make_adapter_state_dict, save_adapter
    from support.tiny_clip import make_clip_vision
    from sampling import ksample

    unet = build_unet()
    widths = [layer.width for layer in cross_attention_layers(unet.model.diffusion_model)]
    clip = make_clip_vision("vit-h", seed=0)
    image = torch.rand(1, 224, 224, 3, generator=torch.Generator().manual_seed(0))
    folder = Path(tempfile.mkdtemp(prefix="ipakit-bench-"))
    models = {"unpatched": unet}
    for label, variant in (("standard", "sd15"), ("plus", "sd15_plus")):
        path = save_adapter(make_adapter_state_dict(variant, widths), folder / f"{variant}.safetensors")
        models[label] = apply_adapter(unet, load_adapter(str(path)), clip, image, weight=1.0)
        if label == "standard":
            models["weight 0"] = apply_adapter(unet, load_adapter(str(path)), clip, image, weight=0.0)
            models["window 0.3-0.7"] = apply_adapter(unet, load_adapter(str(path)), clip, image,
                                                     start_at=0.3, end_at=0.7)

    print(f"SD1.5 UNet ({sum(p.numel() for p in unet.model.diffusion_model.parameters()) / 1e6:.0f}M params), "
          f"256x256, CFG batch 2, {args.rounds} rounds, torch threads {torch.get_num_threads()}")

    def step_seconds(model):
        stamps = []
        ksample(model, "sd15", steps=2, size=32,
                callback=lambda *_: stamps.append((time.perf_counter(), time.process_time())))
        return stamps[1][0] - stamps[0][0], stamps[1][1] - stamps[0][1]

    def step_flops(model):
        from torch.utils.flop_counter import FlopCounterMode
        with FlopCounterMode(display=False) as counter:
            ksample(model, "sd15", steps=1, size=32)
        return counter.get_total_flops()

    labels = list(models)
    wall = {label: [] for label in labels}
    cpu = {label: [] for label in labels}
    for round_index in range(args.rounds):
        shift = round_index % len(labels)
        for label in labels[shift:] + labels[:shift]:
            w, c = step_seconds(models[label])
            wall[label].append(w)
            cpu[label].append(c)
    flops = {label: step_flops(model) for label, model in models.items()}

    def ratio(samples, label):
        r = sorted(t / b for t, b in zip(samples[label], samples["unpatched"]))
        return f"{statistics.median(r):.3f} ({r[0]:.2f}-{r[-1]:.2f})"
    for label in labels:
        print(f"{label:>16}: {statistics.median(wall[label]):.3f} s/step  wall ratio {ratio(wall, label)}  "
              f"CPU ratio {ratio(cpu, label)}  FLOP ratio {flops[label] / flops['unpatched']:.4f}")

if __name__ == "__main__":
    main()
