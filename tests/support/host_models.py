"""Random-weight models that ComfyUI's own loader nodes accept, for end-to-end tests.

No model is ever downloaded. Each file is built from ComfyUI's own module classes (instantiated on
the `meta` device, so only shapes and key names are taken from the host), filled with seeded
random values and written in the on-disk layout real releases use, so that the core nodes
(`CheckpointLoaderSimple`, `CLIPVisionLoader`, ...) detect and load them exactly like real files:

- SD1.5 single-file checkpoint: a UNet with SD1.5's block layout (input 1, 2, 4, 5, 7, 8, output
  3..11, middle; so every weight type finds its blocks) at model_channels 320 on all four levels
  (context 768: what `comfy/model_detection.py` calls SD15, 111M parameters), the full-size CLIP-L
  text encoder and the full-size SD VAE (their sizes are fixed in ComfyUI).
- SDXL single-file checkpoint: UNet with channel_mult [1,1,1] and the input transformer depths
  [0,0,2,2,10,10] that detection requires (160M), CLIP-L + CLIP-G (fixed sizes; CLIP-G is the
  bulk of the file) and the VAE.
- CLIP ViT-H vision encoder (detected from its 32 layers; fixed size).
- An SD1.5 ControlNet for that UNet, in the `control_model.` single-file layout.
- IP-Adapter files made by `tests/support/checkpoints.py` for the widths of the UNets above.

Files are written once into `.cache/models/<VERSION>/` and linked into any models folder.
Tensors are stored in fp16 (ComfyUI casts on load), except for integer buffers.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import sys
import time
import zlib
from pathlib import Path

import torch

_TESTS = str(Path(__file__).resolve().parents[1])
if _TESTS not in sys.path:  # same module names as tests/conftest.py uses: `host`, `support.*`
    sys.path.insert(0, _TESTS)

from host import REPO, import_comfy  # noqa: E402

VERSION = "v2"
CACHE = REPO / ".cache" / "models"
log = logging.getLogger("ipakit.host_models")

SD15_CKPT = "ipakit-tiny-sd15.safetensors"
SDXL_CKPT = "ipakit-tiny-sdxl.safetensors"
VIT_H = "ipakit-random-vit-h.safetensors"
SD15_ADAPTER = "ip-adapter_sd15.safetensors"
SD15_PLUS_ADAPTER = "ip-adapter-plus_sd15.bin"
SDXL_ADAPTER = "ip-adapter_sdxl_vit-h.safetensors"
SD15_CONTROLNET = "ipakit-random-controlnet-sd15.safetensors"
SD15_FACEID = "ip-adapter-faceid_sd15.bin"
SD15_FACEID_PLUSV2 = "ip-adapter-faceid-plusv2_sd15.bin"

# UNet configs in ComfyUI's own terms (what `detect_unet_config` reads back from the weights).
SD15_UNET = dict(model_channels=320, context_dim=768, adm_in_channels=None, num_res_blocks=[2, 2, 2, 2],
                 channel_mult=[1, 1, 1, 1], transformer_depth=[1, 1, 1, 1, 1, 1, 0, 0],
                 transformer_depth_output=[1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0], transformer_depth_middle=1,
                 use_linear_in_transformer=False)
SDXL_UNET = dict(model_channels=320, context_dim=2048, adm_in_channels=2816, num_classes="sequential",
                 num_res_blocks=[2, 2, 2], channel_mult=[1, 1, 1], transformer_depth=[0, 0, 2, 2, 10, 10],
                 transformer_depth_output=[0, 0, 0, 1, 1, 1, 1, 1, 1], transformer_depth_middle=1,
                 use_linear_in_transformer=True)
SD_VAE = {'double_z': True, 'z_channels': 4, 'resolution': 256, 'in_channels': 3, 'out_ch': 3,
          'ch': 128, 'ch_mult': [1, 2, 4, 4], 'num_res_blocks': 2, 'attn_resolutions': [], 'dropout': 0.0}


# --------------------------------------------------------------------------- random tensors
def random_like(name: str, shape, seed: int = 0) -> torch.Tensor:
    """A finite, deterministic tensor for parameter `name` (seeded by the name, order-free).

    Matrices and convolutions get N(0, 1/fan_in) so activations keep unit scale through deep
    random stacks; embeddings N(0, 0.02); 1-D `weight`s (norm gains) ones; biases small noise.
    """
    gen = torch.Generator().manual_seed(zlib.crc32(name.encode()) + seed * 7919)
    shape = tuple(shape)
    if len(shape) == 0:
        return torch.ones(())
    if "embedding" in name or name.endswith("latents"):
        return torch.randn(shape, generator=gen) * 0.02
    if len(shape) == 1:
        if name.endswith("weight"):
            return torch.ones(shape)
        return torch.randn(shape, generator=gen) * 0.02
    fan_in = 1
    for s in shape[1:]:
        fan_in *= s
    return torch.randn(shape, generator=gen) / fan_in ** 0.5


def random_state_dict(module: torch.nn.Module, prefix: str = "", seed: int = 0,
                      dtype=torch.float16) -> dict[str, torch.Tensor]:
    """Random values for every parameter/buffer of a (meta-device) module, keyed `prefix+name`."""
    out = {}
    for name, t in module.state_dict().items():
        key = prefix + name
        if t.dtype in (torch.int64, torch.int32, torch.long):
            out[key] = torch.arange(t.shape[-1]).expand(t.shape).clone()  # position_ids
        else:
            out[key] = random_like(key, t.shape, seed).to(dtype)
    return out


# --------------------------------------------------------------------------- component builders
def _unet(cfg: dict, config_cls):
    """The host's UNetModel for `cfg`, on meta, plus the model config class that wraps it."""
    import comfy.ops
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel
    full = dict(image_size=32, use_spatial_transformer=True, legacy=False, use_checkpoint=False,
                in_channels=4, out_channels=4, use_temporal_resblock=False, use_temporal_attention=False)
    full.update(cfg)
    mc = config_cls(full)
    with torch.device("meta"):
        return UNetModel(**mc.unet_config, operations=comfy.ops.disable_weight_init, device="meta"), mc


def cross_attention_widths(unet) -> list[int]:
    """attn2 widths in diffusers order: input blocks, output blocks, then the middle block last."""
    from comfy.ldm.modules.attention import BasicTransformerBlock
    widths = []
    for part in (unet.input_blocks, unet.output_blocks, unet.middle_block):
        for m in part.modules():
            if isinstance(m, BasicTransformerBlock):
                widths.append(m.attn2.to_q.weight.shape[0])
    return widths


def _vae_sd(mc, seed):
    from comfy.ldm.models.autoencoder import AutoencoderKL
    with torch.device("meta"):
        vae = AutoencoderKL(ddconfig=SD_VAE, embed_dim=4)
    return mc.process_vae_state_dict_for_saving(random_state_dict(vae, seed=seed))


def _checkpoint(unet_cfg, config_cls, clip_cls, clip_prefix, seed):
    """UNet + text encoder(s) + VAE in the single-file layout, saved with ComfyUI's own converters
    (for SDXL they turn clip_g into the open_clip layout real checkpoints use)."""
    unet, mc = _unet(unet_cfg, config_cls)
    sd = random_state_dict(unet, "model.diffusion_model.", seed)
    with torch.device("meta"):
        clip = clip_cls(device="meta")
    sd.update(mc.process_clip_state_dict_for_saving(random_state_dict(clip, clip_prefix, seed)))
    sd.update(_vae_sd(mc, seed))
    return sd, cross_attention_widths(unet)


def _sd15_checkpoint(seed=0):
    import comfy.sd1_clip
    import comfy.supported_models as sm
    return _checkpoint(SD15_UNET, sm.SD15, comfy.sd1_clip.SDClipModel, "clip_l.", seed)


def _sdxl_checkpoint(seed=0):
    import comfy.sdxl_clip
    import comfy.supported_models as sm
    return _checkpoint(SDXL_UNET, sm.SDXL, comfy.sdxl_clip.SDXLClipModel, "", seed)


def _sd15_controlnet(seed=0):
    import comfy.cldm.cldm
    import comfy.ops
    import comfy.supported_models as sm
    _, mc = _unet(SD15_UNET, sm.SD15)
    config = dict(mc.unet_config, hint_channels=3)
    config.pop("out_channels")
    with torch.device("meta"):
        net = comfy.cldm.cldm.ControlNet(**config, operations=comfy.ops.disable_weight_init, device="meta")
    return random_state_dict(net, "control_model.", seed)


def _vit_h(seed=0):
    import json

    import comfy.clip_model
    import comfy.ops
    config = json.loads((Path(comfy.clip_model.__file__).parent / "clip_vision_config_h.json").read_text())
    with torch.device("meta"):
        model = comfy.clip_model.CLIPVisionModelProjection(config, torch.float16, "meta", comfy.ops.manual_cast)
    return random_state_dict(model, seed=seed)


# --------------------------------------------------------------------------- cache + public API
def _save(sd: dict, path: Path):
    from safetensors.torch import save_file
    for k, v in sd.items():
        if v.is_floating_point() and not torch.isfinite(v).all():
            raise ValueError(f"non-finite tensor {k}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # concurrent runs never share a tmp
    save_file({k: v.contiguous() for k, v in sd.items()}, str(tmp))
    os.replace(tmp, path)


def _widths_file(name: str) -> Path:
    return CACHE / VERSION / f"{name}.widths"


def _build(kind: str) -> Path:
    """Generate one base model into the cache (unless present); returns its path."""
    rel = {"sd15": f"checkpoints/{SD15_CKPT}", "sdxl": f"checkpoints/{SDXL_CKPT}",
           "vit_h": f"clip_vision/{VIT_H}", "controlnet": f"controlnet/{SD15_CONTROLNET}"}[kind]
    path = CACHE / VERSION / rel
    if path.exists() and (kind in ("vit_h", "controlnet") or _widths_file(kind).exists()):
        return path
    import_comfy()
    t0 = time.time()
    if kind == "vit_h":
        sd = _vit_h()
    elif kind == "controlnet":
        sd = _sd15_controlnet()
    else:
        sd, widths = (_sd15_checkpoint if kind == "sd15" else _sdxl_checkpoint)()
        _widths_file(kind).parent.mkdir(parents=True, exist_ok=True)
        _widths_file(kind).write_text(" ".join(map(str, widths)))
    _save(sd, path)
    del sd
    log.info("generated %s in %.1f s (%.0f MB)", rel, time.time() - t0, path.stat().st_size / 2**20)
    return path


def _adapter(kind: str, variant: str, filename: str) -> Path:
    """IP-Adapter file for base `kind`, keyed by the generator's source so edits regenerate it."""
    from support import checkpoints
    src = hashlib.sha1(Path(checkpoints.__file__).read_bytes()).hexdigest()[:10]
    path = CACHE / VERSION / f"ipadapter-{src}" / filename
    if not path.exists():
        _build(kind)
        widths = [int(w) for w in _widths_file(kind).read_text().split()]
        sd = checkpoints.make_adapter_state_dict(variant, widths, seed=0)
        bad = [f"{g}.{k}" for g, sub in sd.items() for k, v in sub.items() if not torch.isfinite(v).all()]
        if bad:
            raise ValueError(f"non-finite adapter tensors: {bad[:5]}")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp{path.suffix}")  # suffix picks the format
        checkpoints.save_adapter(sd, str(tmp))
        os.replace(tmp, path)
    return path


def _link(src: Path, dst: Path):
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.is_symlink() or dst.exists():
        if dst.resolve() == src.resolve():
            return
        dst.unlink()
    try:
        os.symlink(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


REFERENCE_IMAGE = "ipakit_reference.png"


def write_reference_image(input_dir, name: str = REFERENCE_IMAGE) -> Path:
    """A deterministic 256 px reference image with structure (gradients, a disc) for LoadImage."""
    import numpy as np
    from PIL import Image
    y, x = np.mgrid[0:256, 0:256] / 255.0
    disc = ((x - 0.6) ** 2 + (y - 0.4) ** 2 < 0.06).astype(float)
    rgb = np.stack([x, y * (1 - disc), 0.5 + 0.5 * disc], -1)
    path = Path(input_dir) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((rgb * 255).astype(np.uint8)).save(path)
    return path


def prepare_models(models_dir, which=("sd15",), adapters: bool = True) -> dict[str, str]:
    """Make the random models for `which` (subset of "sd15", "sdxl", "controlnet", "faceid") appear in `models_dir`.

    Returns the names the loader nodes take: `checkpoint` / `sdxl_checkpoint`, `clip_vision`,
    `ipadapter`, `ipadapter_plus`, `sdxl_ipadapter`, `controlnet`, `faceid`, `faceid_plusv2` (with
    models/insightface/models/buffalo_l). `adapters=False` skips the
    IP-Adapter files (for runs that only need the host's own nodes).
    """
    models = Path(models_dir)
    names: dict[str, str] = {}
    _link(_build("vit_h"), models / "clip_vision" / VIT_H)
    names["clip_vision"] = VIT_H
    if "sd15" in which:
        _link(_build("sd15"), models / "checkpoints" / SD15_CKPT)
        names["checkpoint"] = SD15_CKPT
        if adapters:
            _link(_adapter("sd15", "sd15", SD15_ADAPTER), models / "ipadapter" / SD15_ADAPTER)
            _link(_adapter("sd15", "sd15_plus", SD15_PLUS_ADAPTER), models / "ipadapter" / SD15_PLUS_ADAPTER)
            names.update(ipadapter=SD15_ADAPTER, ipadapter_plus=SD15_PLUS_ADAPTER)
    if "faceid" in which:  # FaceID adapters for the SD1.5 checkpoint, and insightface's buffalo_l (generated ONNX)
        _link(_adapter("sd15", "faceid_sd15", SD15_FACEID), models / "ipadapter" / SD15_FACEID)
        _link(_adapter("sd15", "faceid-plusv2_sd15", SD15_FACEID_PLUSV2), models / "ipadapter" / SD15_FACEID_PLUSV2)
        from support.onnx_faces import make_model_folder
        if not (models / "insightface" / "models" / "buffalo_l" / "2_rec.onnx").exists():
            make_model_folder(models / "insightface")
        names.update(faceid=SD15_FACEID, faceid_plusv2=SD15_FACEID_PLUSV2)
    if "controlnet" in which:
        _link(_build("controlnet"), models / "controlnet" / SD15_CONTROLNET)
        names["controlnet"] = SD15_CONTROLNET
    if "sdxl" in which:
        _link(_build("sdxl"), models / "checkpoints" / SDXL_CKPT)
        names["sdxl_checkpoint"] = SDXL_CKPT
        if adapters:
            _link(_adapter("sdxl", "sdxl_vit-h", SDXL_ADAPTER), models / "ipadapter" / SDXL_ADAPTER)
            names["sdxl_ipadapter"] = SDXL_ADAPTER
    return names
