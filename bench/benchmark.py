"""Per-step cost of the patch against the unpatched model, measured in one run.

A real-architecture SD1.5 UNet (860M parameters, random weights) samples a 256x256 image (32x32
latent) with CFG on the CPU; the same run times the unpatched model and the model patched with a
standard and a plus adapter, with weight 0, with a start/end window, with the "style transfer"
weight type, with three stacked adapters each under its own mask, and with FaceID-PlusV2 with its
LoRA (rank 128 on every attention layer, merged when the model loads) and without it. The
attention calls of the first step (sigma max, before the window) are counted per model.

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
    parser.add_argument("--only", nargs="*", help="time only these models (and 'unpatched'), e.g. --only plus")
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
    adapters = {variant: load_adapter(str(save_adapter(make_adapter_state_dict(variant, widths, seed=i),
                                                       folder / f"{variant}.safetensors")))
                for i, variant in enumerate(("sd15", "sd15_plus"))}
    standard, plus = adapters["sd15"], adapters["sd15_plus"]
    models = {"unpatched": unet,
              "standard": apply_adapter(unet, standard, clip, image),
              "plus": apply_adapter(unet, plus, clip, image),
              "weight 0": apply_adapter(unet, standard, clip, image, weight=0.0),
              "window 0.3-0.7": apply_adapter(unet, standard, clip, image, start_at=0.3, end_at=0.7),
              "style transfer": apply_adapter(unet, plus, clip, image, weight_type="style transfer")}
    stacked = unet  # three adapters, each with its own mask (left, right, centre)
    for i, (adapter, box) in enumerate(((standard, (slice(None), slice(0, 16))), (plus, (slice(None), slice(16, 32))),
                                        (standard, (slice(8, 24), slice(8, 24))))):
        mask = torch.zeros(1, 32, 32)
        mask[(0, *box)] = 1.0
        stacked = apply_adapter(stacked, adapter, clip, image.flip(1) if i else image, weight=0.7, attn_mask=mask)
    models["3 stacked, masked"] = stacked
    from comfyui_ipadapter_kit.patching.faceid import Faces, apply_faceid
    face_state = make_adapter_state_dict("faceid-plusv2_sd15", widths)
    # A trained LoRA is a small change of the weights; random rank-128 pairs at unit scale would replace them
    # (and push activations into ranges that are slow on CPUs), which measures the weights, not the patch.
    face_state["ip_adapter"] = {k: v * 0.02 if "_lora.up" in k else v for k, v in face_state["ip_adapter"].items()}
    face_adapter = load_adapter(str(save_adapter(face_state, folder / "ip-adapter-faceid-plusv2_sd15.bin")))
    gen = torch.Generator().manual_seed(1)
    faces = Faces(torch.randn(1, 512, generator=gen) * 20, torch.rand(1, 224, 224, 3, generator=gen), (0,))
    models["FaceID-PlusV2 + LoRA"] = apply_faceid(unet, face_adapter, faces, clip, lora_strength=1.0)
    # the same adapter without its LoRA: splits the patch's cost from that of the UNet's merged weights
    models["FaceID-PlusV2, no LoRA"] = apply_faceid(unet, face_adapter, faces, clip, lora_strength=0.0)
    if args.only:
        models = {k: v for k, v in models.items() if k == "unpatched" or k in args.only}

    print(f"SD1.5 UNet ({sum(p.numel() for p in unet.model.diffusion_model.parameters()) / 1e6:.0f}M params), "
          f"256x256, CFG batch 2, {args.rounds} rounds, torch threads {torch.get_num_threads()}")

    def step_seconds(model):
        stamps = []
        ksample(model, "sd15", steps=2, size=32,
                callback=lambda *_: stamps.append((time.perf_counter(), time.process_time())))
        return stamps[1][0] - stamps[0][0], stamps[1][1] - stamps[0][1]

    def step_flops(model):
        """FLOPs of one sampling step, the model loaded (and any LoRA merged) before counting."""
        import comfy.model_management
        from torch.utils.flop_counter import FlopCounterMode
        comfy.model_management.load_models_gpu([model])
        with FlopCounterMode(display=False) as counter:
            ksample(model, "sd15", steps=1, size=32)
        return counter.get_total_flops()

    def attention_calls(model, **apply_kw):
        """Attention calls in the first step (sigma max: before a 0.3-0.7 window)."""
        import comfy.ldm.modules.attention as attention
        original, calls = attention.optimized_attention, []
        attention.optimized_attention = lambda *a, **k: calls.append(1) or original(*a, **k)
        try:
            ksample(model, "sd15", steps=1, size=32)
        finally:
            attention.optimized_attention = original
        return len(calls)

    def image_attention_seconds(model):
        """Seconds per step spent in the adapters' image attention (the text part excluded)."""
        from comfyui_ipadapter_kit.patching import cross_attention
        original, spent = cross_attention._attention, []

        def timed(q, k, v, extra_options, *preferred):
            if preferred:  # the text part (it passes the layer's own method, usually None)
                return original(q, k, v, extra_options, *preferred)
            start = time.perf_counter()
            out = original(q, k, v, extra_options)
            spent.append(time.perf_counter() - start)
            return out
        cross_attention._attention = timed
        try:
            ksample(model, "sd15", steps=1, size=32)
        finally:
            cross_attention._attention = original
        return sum(spent)

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
    calls = {label: attention_calls(model) for label, model in models.items()}
    image_seconds = {label: statistics.median(image_attention_seconds(model) for _ in range(3))
                     for label, model in models.items()}
    for label in labels:
        print(f"{label:>18}: {statistics.median(wall[label]):.3f} s/step  wall ratio {ratio(wall, label)}  "
              f"CPU ratio {ratio(cpu, label)}  FLOP ratio {flops[label] / flops['unpatched']:.4f}  "
              f"attention calls (step 1) {calls[label]}  image attention {1000 * image_seconds[label]:.1f} ms/step")

if __name__ == "__main__":
    main()
