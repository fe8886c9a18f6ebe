"""The CLIP vision loader reads ComfyUI/transformers and open_clip files into ComfyUI's own CLIP_VISION,
with the same outputs as open_clip's and transformers' models on the same weights; image prep."""
import pytest
import torch

from comfyui_ipadapter_kit.ip_models.clip_formats import ClipFormatError
from comfyui_ipadapter_kit.ip_models.image_prep import contrast_adaptive_sharpen, prep_for_clip, square
from comfyui_ipadapter_kit.nodes import NODE_CLASS_MAPPINGS as NODES
from comfyui_ipadapter_kit.patching.clip_loader import load_clip_vision
from support.clip_files import (hf_model, open_clip_outputs, open_clip_tower, transformers_outputs,
                                write_three_layouts)
from support.patches import relative_error


@pytest.fixture(autouse=True)
def fp32_encoders(monkeypatch):
    """Encoders load in fp32 (on CPU the host picks fp16), so outputs compare at 1e-5."""
    import comfy.cli_args
    monkeypatch.setattr(comfy.cli_args.args, "fp32_text_enc", True)


@pytest.fixture(scope="module", params=["vit-h", "vit-bigg", "vit-l"])
def layouts(request, tmp_path_factory):
    kind = request.param
    return kind, write_three_layouts(kind, tmp_path_factory.mktemp(f"clip-{kind}"), seed=21)


def comfy_outputs(clip, pixels):
    with torch.no_grad():
        out = clip.model(pixel_values=pixels, intermediate_output=-2)
    return out[2], out[1]


def pixels_for(image_size=56, seed=0):
    return torch.randn(2, 3, image_size, image_size, generator=torch.Generator().manual_seed(seed))


def test_the_three_layouts_load_to_the_same_encoder(layouts):
    kind, paths = layouts
    pixels = pixels_for()
    outputs = {name: comfy_outputs(load_clip_vision(str(path)), pixels) for name, path in paths.items()}
    ref_embeds, ref_hidden = outputs["transformers"]
    for name, (embeds, hidden) in outputs.items():
        assert relative_error(embeds, ref_embeds) < 1e-5, name
        assert relative_error(hidden, ref_hidden) < 1e-5, name


def test_loaded_encoders_match_open_clip_and_transformers_on_the_same_weights(layouts):
    kind, paths = layouts
    pixels = pixels_for(seed=1)
    tower = open_clip_tower(kind, seed=21)
    ours = comfy_outputs(load_clip_vision(str(paths["open_clip.safetensors"])), pixels)
    for reference in (open_clip_outputs(tower, pixels), transformers_outputs(hf_model(kind, tower), pixels)):
        assert relative_error(ours[0], reference[0]) < 1e-5
        assert relative_error(ours[1], reference[1]) < 1e-5


def test_the_loader_returns_comfyuis_own_clip_vision_type(layouts, tmp_path):
    import comfy.clip_vision
    _, paths = layouts
    clip = load_clip_vision(str(paths["open_clip.bin"]))
    assert isinstance(clip, comfy.clip_vision.ClipVisionModel) and clip.image_size == 56
    out = clip.encode_image(torch.rand(1, 80, 64, 3))  # core's own encode path works on it
    assert out["penultimate_hidden_states"].shape == (1, 17, clip.model.vision_model.post_layernorm.weight.shape[0])


def test_the_text_tower_of_an_open_clip_file_is_skipped(layouts):
    from safetensors import safe_open
    from support.clip_files import LAYERS
    _, paths = layouts
    with safe_open(str(paths["open_clip.safetensors"]), framework="pt") as f:
        keys = set(f.keys())
    text = {"token_embedding.weight", "positional_embedding", "transformer.resblocks.2.attn.in_proj_weight",
            "transformer.resblocks.0.mlp.c_proj.weight", "ln_final.weight", "ln_final.bias", "text_projection"}
    assert text <= keys  # the whole CLIP, as open_clip saves it
    loaded = load_clip_vision(str(paths["open_clip.safetensors"])).model.state_dict()
    assert all(k.startswith(("vision_model.", "visual_projection.")) for k in loaded)
    assert 1 + max(int(k.split(".")[3]) for k in loaded if ".encoder.layers." in k) == LAYERS


@pytest.mark.slow  # two forwards of a real-size ViT-H on the CPU: core's loader only knows the real configs
def test_cores_clip_vision_encode_node_runs_on_our_encoder_as_on_its_own(tmp_path):
    """Core's 'CLIP Vision Encode' on our loader's CLIP_VISION (read from open_clip's layout) gives what it
    gives on core's 'Load CLIP Vision' of the same weights in ComfyUI's layout (a real-size ViT-H)."""
    import gc

    import folder_paths
    import nodes as core
    from safetensors.torch import load_file, save_file
    from support.clip_files import open_clip_layout
    from support.host_models import prepare_models
    name = prepare_models(folder_paths.models_dir, which=(), adapters=False)["clip_vision"]
    comfy_file = folder_paths.get_full_path("clip_vision", name)
    save_file(open_clip_layout(load_file(comfy_file)), str(tmp_path / "open_clip_pytorch_model.safetensors"))
    image = torch.rand(1, 80, 64, 3, generator=torch.Generator().manual_seed(6))
    outputs = []
    for clip in (lambda: load_clip_vision(str(tmp_path / "open_clip_pytorch_model.safetensors")),
                 lambda: core.CLIPVisionLoader().load_clip(name)[0]):
        (out,) = core.CLIPVisionEncode().encode(clip(), image, "center")  # one model in memory at a time
        outputs.append({k: out[k] for k in ("image_embeds", "last_hidden_state", "penultimate_hidden_states")})
        gc.collect()
    ours, cores = outputs
    assert ours["penultimate_hidden_states"].shape == (1, 257, 1280) and ours["image_embeds"].shape == (1, 1024)
    for key in ours:
        assert relative_error(ours[key], cores[key]) < 1e-5, key


def test_a_file_that_is_no_clip_encoder_names_the_layouts(tmp_path):
    from safetensors.torch import save_file
    save_file({"model.diffusion_model.x": torch.zeros(2)}, str(tmp_path / "unet.safetensors"))
    with pytest.raises(ClipFormatError, match="not a CLIP image encoder.*open_clip keys"):
        load_clip_vision(str(tmp_path / "unet.safetensors"))


# --------------------------------------------------------------------------- image prep
@pytest.mark.parametrize("shape", [(1, 37, 91, 4), (2, 101, 33, 1), (3, 50, 50, 3)])
@pytest.mark.parametrize("position", ["center", "top", "left", "pad"])
def test_prep_handles_rgba_greyscale_odd_sizes_and_batches(shape, position):
    image = torch.rand(*shape, generator=torch.Generator().manual_seed(3))
    for size in (224, 336):
        out = prep_for_clip(image, size, "BICUBIC", position, sharpening=0.3)
        assert out.shape == (shape[0], size, size, 3) and 0 <= out.min() and out.max() <= 1


def test_crop_positions_pick_the_named_square():
    portrait = torch.arange(10, dtype=torch.float32).view(1, 10, 1, 1).expand(1, 10, 4, 3)
    assert square(portrait, "top")[0, :, 0, 0].tolist() == [0, 1, 2, 3]
    assert square(portrait, "bottom")[0, :, 0, 0].tolist() == [6, 7, 8, 9]
    assert square(portrait, "left")[0, :, 0, 0].tolist() == [3, 4, 5, 6]  # left/right: only on landscape
    padded = square(torch.ones(1, 3, 8, 3), "pad")
    assert padded.shape == (1, 8, 8, 3) and padded[0, :, 0].sum() == 3 * 3 and padded.sum() == 3 * 8 * 3


def test_sharpening_raises_local_contrast_and_zero_is_identity():
    gen = torch.Generator().manual_seed(4)
    image = (torch.rand(1, 32, 32, 3, generator=gen) * 0.5 + 0.25)
    smooth = torch.nn.functional.avg_pool2d(image.permute(0, 3, 1, 2), 3, 1, 1).permute(0, 2, 3, 1)
    assert torch.equal(contrast_adaptive_sharpen(smooth, 0.0), smooth)
    sharp = contrast_adaptive_sharpen(smooth, 1.0)
    inner = (slice(None), slice(2, -2), slice(2, -2))
    lap = lambda x: (x[:, 1:] - x[:, :-1]).abs().mean()
    assert lap(sharp[inner]) > lap(smooth[inner])


def test_the_prep_node_gives_square_images():
    (out,) = NODES["IPAKitPrepImage"]().prep(torch.rand(2, 60, 90, 3), "LANCZOS", "right", 0.0, 224)
    assert out.shape == (2, 224, 224, 3)
