"""Variants are read off the weights, in both official file layouts, and bad files are refused clearly."""
import pickle

import pytest
import torch

from comfyui_ipadapter_kit.ip_models import AdapterFileError, detect_spec, read_adapter_file
from support.checkpoints import VARIANT_INFO, VARIANTS, make_adapter_state_dict, save_adapter

# Real layer counts (16 / 70) with narrow K/V rows: detection reads the count and the token width,
# and the real image_proj shapes; full-width rows would only make the files 1 GB.
SD15_WIDTHS = [8] * 16
SDXL_WIDTHS = [8] * 70
EXPECTED_ENCODER = {"vit-h": "ViT-H-14", "vit-bigg": "ViT-bigG-14"}


@pytest.fixture(scope="module")
def real_layout_files(tmp_path_factory):
    """Every variant in its real layout, once as .bin and once as .safetensors."""
    root = tmp_path_factory.mktemp("real-layout")
    files = {}
    for variant in VARIANTS:
        widths = SD15_WIDTHS if VARIANT_INFO[variant]["family"] == "sd15" else SDXL_WIDTHS
        state = make_adapter_state_dict(variant, widths, seed=1)
        for ext in (".bin", ".safetensors"):
            files[variant, ext] = save_adapter(state, root / f"ip-adapter_{variant}{ext}")
    return files


@pytest.mark.parametrize("ext", [".bin", ".safetensors"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_variant_is_detected_from_the_weights(variant, ext, real_layout_files):
    path = real_layout_files[variant, ext]
    spec = detect_spec(read_adapter_file(str(path)), file_hint=path.name)
    info = VARIANT_INFO[variant]
    assert spec.variant == variant
    assert spec.family == info["family"]
    assert spec.cross_dim == info["cross_dim"]
    assert spec.clip_input == info["clip_input"]
    assert spec.encoder.name == EXPECTED_ENCODER[info["encoder"]]
    assert len(spec.layer_keys) == (16 if info["family"] == "sd15" else 70)
    if info["projection"] != "full":
        assert spec.num_tokens == info["tokens"]


def test_renaming_a_file_never_changes_the_maths(real_layout_files, tmp_path):
    renamed = tmp_path / "my-favourite-adapter.safetensors"
    renamed.write_bytes(real_layout_files["sd15_plus-face", ".safetensors"].read_bytes())
    spec = detect_spec(read_adapter_file(str(renamed)), file_hint=renamed.name)
    original = detect_spec(read_adapter_file(str(real_layout_files["sd15_plus-face", ".safetensors"])))
    assert spec.variant == "sd15_plus"  # only the label falls back; projection and tokens are the same
    assert (spec.projection, spec.num_tokens, spec.resampler) == (original.projection, original.num_tokens,
                                                                  original.resampler)


def test_training_checkpoint_prefix_is_accepted(tmp_path):
    from safetensors.torch import save_file
    state = make_adapter_state_dict("sd15", SD15_WIDTHS[:2])
    flat = {f"image_proj.{k}": v for k, v in state["image_proj"].items()}
    flat.update({f"adapter_modules.{k}": v for k, v in state["ip_adapter"].items()})
    save_file(flat, str(tmp_path / "trained.safetensors"))
    assert detect_spec(read_adapter_file(str(tmp_path / "trained.safetensors"))).variant == "sd15"


def test_a_file_that_is_not_an_adapter_names_the_problem(tmp_path):
    from safetensors.torch import save_file
    save_file({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(2, 2)}, str(tmp_path / "ckpt.safetensors"))
    with pytest.raises(AdapterFileError, match="is not an IP-Adapter.*models/ipadapter"):
        read_adapter_file(str(tmp_path / "ckpt.safetensors"))


def test_garbage_bytes_are_refused(tmp_path):
    (tmp_path / "broken.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(AdapterFileError, match="not a readable .safetensors"):
        read_adapter_file(str(tmp_path / "broken.safetensors"))


class _Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickles_with_code_are_never_unpickled(tmp_path):
    path = tmp_path / "evil.bin"
    with open(path, "wb") as f:
        pickle.dump({"image_proj": {}, "ip_adapter": {}, "x": _Payload()}, f)
    with pytest.raises(AdapterFileError, match="only weights-only pickles"):
        read_adapter_file(str(path))


def test_unsupported_extension_is_refused(tmp_path):
    (tmp_path / "adapter.onnx").write_bytes(b"")
    with pytest.raises(AdapterFileError, match="use .safetensors or .bin"):
        read_adapter_file(str(tmp_path / "adapter.onnx"))


def test_a_faceid_mlp_file_is_detected_as_faceid(tmp_path):
    state = make_adapter_state_dict("sd15", SD15_WIDTHS[:2])
    state["image_proj"] = {"proj.0.weight": torch.zeros(1024, 512), "proj.0.bias": torch.zeros(1024),
                           "proj.2.weight": torch.zeros(3072, 1024), "proj.2.bias": torch.zeros(3072),
                           "norm.weight": torch.ones(768), "norm.bias": torch.zeros(768)}
    save_adapter(state, tmp_path / "ip-adapter-faceid_sd15.bin")
    spec = detect_spec(read_adapter_file(str(tmp_path / "ip-adapter-faceid_sd15.bin")))
    assert (spec.variant, spec.face, spec.num_tokens, spec.has_lora) == ("faceid_sd15", "mlp", 4, False)
