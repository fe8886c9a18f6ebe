"""What newer ComfyUI hosts changed, held on every tested host (v0.3.75 and 0.33).

- adapter weights use the host's patcher class for auxiliary models (CoreModelPatcher);
- caches are per device and survive `.to(device)` calls made from several threads (MultiGPU);
- a layer's own attention method (ComfyUI 0.38's `comfy_attention`) is handed on for the text part;
- a projection-less CLIP vision model gets the pack's encoder error;
- clones share patches, weights and caches whether the host deep-copies model options or not.
"""
import copy
import os
import threading

import pytest
import torch

import comfy.ldm.modules.attention as host_attention
import comfy.model_patcher

import host
from comfyui_ipadapter_kit.ip_models.adapter import IPAdapterModel
from comfyui_ipadapter_kit.patching import adapter_handle
from comfyui_ipadapter_kit.patching.apply import apply_adapter
from comfyui_ipadapter_kit.patching.encode import EncoderMismatchError
from sampling import ksample
from support.patches import attn2_patches, first_plan


@pytest.fixture(scope="module")
def sd15_adapter(sd15_model, make_adapter):
    return make_adapter(sd15_model, "sd15")




def test_the_tested_host_is_the_one_asked_for():
    expected = {"v0.3.75": "0.3.75", "0.33": "0.33.0"}.get(os.environ.get("IPAKIT_HOST", ""))
    if expected is None:
        pytest.skip("a custom host (COMFYUI_PATH)")
    assert host.comfy_version() == expected


# --------------------------------------------------------------------------- patcher class
def test_adapter_weights_use_the_hosts_auxiliary_patcher_class(sd15_model, make_adapter, monkeypatch):
    class HostAuxPatcher(comfy.model_patcher.ModelPatcher):
        pass
    # What DynamicVRAM hosts do at start-up (main.py swaps CoreModelPatcher for their own class).
    monkeypatch.setattr(comfy.model_patcher, "CoreModelPatcher", HostAuxPatcher, raising=False)
    adapter = make_adapter(sd15_model, "sd15", name="aux-patcher.safetensors")
    assert type(adapter.patcher) is HostAuxPatcher


def test_hosts_without_core_model_patcher_fall_back_to_model_patcher(sd15_model, make_adapter, monkeypatch):
    monkeypatch.delattr(comfy.model_patcher, "CoreModelPatcher", raising=False)
    adapter = make_adapter(sd15_model, "sd15", name="plain-patcher.safetensors")
    assert type(adapter.patcher) is comfy.model_patcher.ModelPatcher


def test_on_this_host_the_patcher_is_the_hosts_own_choice(sd15_adapter):
    assert type(sd15_adapter.patcher) is getattr(comfy.model_patcher, "CoreModelPatcher",
                                                 comfy.model_patcher.ModelPatcher)
    assert adapter_handle.patcher_class() is type(sd15_adapter.patcher)


# --------------------------------------------------------------------------- per-device caches
def test_image_kv_is_computed_on_the_device_asked_for(sd15_adapter):
    tokens = torch.randn(2, 4, 768)
    key = sd15_adapter.spec.layer_keys[0]
    k, v = sd15_adapter.model.image_kv(key, tokens, torch.device("meta"))
    assert k.device.type == "meta" and v.device.type == "meta"  # weights were brought to that device
    k_cpu, _ = sd15_adapter.model.image_kv(key, tokens, torch.device("cpu"))
    assert torch.equal(k_cpu, tokens @ sd15_adapter.model.ip_adapter[str(key)].to_k_ip.weight.t())


def test_caches_stay_per_device_while_threads_move_the_patch(sd15_model, sd15_adapter, clip_vit_h,
                                                             reference_images, monkeypatch):
    patched = apply_adapter(sd15_model, sd15_adapter, clip_vit_h, reference_images[:1])
    plan = first_plan(patched)
    rule = plan.layers[sd15_adapter.spec.layer_keys[0]]
    calls = []
    original = IPAdapterModel.image_kv

    def spy(self, layer_key, tokens, device=None):
        calls.append((layer_key, device))
        return original(self, layer_key, tokens, device)
    monkeypatch.setattr(IPAdapterModel, "image_kv", spy)

    devices = [torch.device("cpu"), torch.device("cpu", 0), torch.device("meta")]
    keys = sd15_adapter.spec.layer_keys
    results = {d: [] for d in devices}
    errors = []
    start = threading.Barrier(len(devices))

    def worker(device):
        # What a MultiGPU work unit does: move every patch to its device, then look K/V up there.
        try:
            start.wait()
            for _ in range(5):
                patched.model_patches_to(device)
                for key in keys:
                    results[device].append(plan.layer_inputs(key, rule, (True, False), 1, None, device, torch.float32))
        except Exception as exc:  # surfaced below, with the thread's device
            errors.append((device, exc))

    threads = [threading.Thread(target=worker, args=(d,)) for d in devices]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    # Every (layer, device) computed once, from weights brought to that device; nothing cleared.
    assert sorted(calls, key=str) == sorted(((k, d) for k in keys for d in devices), key=str)
    for device in devices:
        assert all(k.device.type == device.type for k, _, _ in results[device])
    cpu, cpu0 = results[devices[0]], results[devices[1]]
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(cpu, cpu0))


# --------------------------------------------------------------------------- per-layer attention
@pytest.fixture
def layer_with_own_attention(sd15_model):
    """The tiny UNet's first cross-attention layer carrying a per-layer method, as 0.38 stores one."""
    calls = []

    def own_attention(q, k, v, heads, **kwargs):
        calls.append(k.shape[1])
        kwargs.pop("preferred_attention", None)
        return host_attention.attention_basic(q, k, v, heads, **kwargs)
    attn2 = sd15_model.model.diffusion_model.input_blocks[1][1].transformer_blocks[0].attn2
    attn2.comfy_attention = own_attention
    try:
        yield own_attention, calls
    finally:
        del attn2.comfy_attention


def forwarding_attention(monkeypatch):
    """optimized_attention as a 0.38 host has it: a preferred method given by the caller wins."""
    original = host_attention.optimized_attention
    seen = []

    def dispatch(q, k, v, heads, preferred_attention=None, **kwargs):
        seen.append(preferred_attention)
        if preferred_attention is not None:
            return preferred_attention(q, k, v, heads, **kwargs)
        return original(q, k, v, heads, **kwargs)
    monkeypatch.setattr(host_attention, "optimized_attention", dispatch)
    return seen


def test_the_layers_own_attention_method_computes_the_text_part(sd15_model, sd15_adapter, clip_vit_h,
                                                                reference_images, layer_with_own_attention,
                                                                monkeypatch):
    own_attention, calls = layer_with_own_attention
    patched = apply_adapter(sd15_model, sd15_adapter, clip_vit_h, reference_images[:1])
    seen = forwarding_attention(monkeypatch)
    ksample(patched, "sd15", steps=1)
    assert calls and set(calls) == {77}  # only the text part (77 text tokens), never the image tokens
    assert seen.count(own_attention) == len(calls)
    assert all(p is None for p in seen if p is not own_attention)  # other layers: the host's default


def test_an_inactive_patch_returns_exactly_what_the_layers_own_method_gives(sd15_model, sd15_adapter, clip_vit_h,
                                                                            reference_images,
                                                                            layer_with_own_attention, monkeypatch):
    own_attention, _ = layer_with_own_attention
    patched = apply_adapter(sd15_model, sd15_adapter, clip_vit_h, reference_images[:1], start_at=0.5)
    forwarding_attention(monkeypatch)
    patch = attn2_patches(patched)[("input", 1, 0)]
    assert patch.layer.preferred_attention is own_attention
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(2, 16, patch.layer.width, generator=gen)
    k = v = torch.randn(2, 77, patch.layer.width, generator=gen)
    options = {"n_heads": 8, "dim_head": patch.layer.width // 8, "cond_or_uncond": [0, 1],
               "ipakit_sigma": 100.0, "original_shape": [2, 4, 4, 4]}  # a sigma before the window
    assert torch.equal(patch(q, k, v, options), own_attention(q, k, v, 8))


# --------------------------------------------------------------------------- CLIP vision
@pytest.fixture
def projectionless_vit_h():
    """A ViT-H whose file had no visual_projection.weight, loaded the way 0.33 does (nn.Identity)."""
    from support.tiny_clip import make_clip_vision
    clip = make_clip_vision("vit-h", seed=7)
    clip.model.visual_projection = torch.nn.Identity()
    return clip


def test_a_projectionless_encoder_gets_the_encoder_error_naming_the_file(sd15_model, sd15_adapter,
                                                                         projectionless_vit_h, reference_images):
    with pytest.raises(EncoderMismatchError, match=r"needs the CLIP ViT-H-14 .* without its visual projection.*"
                                                   r"CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors"):
        apply_adapter(sd15_model, sd15_adapter, projectionless_vit_h, reference_images[:1])


def test_a_projectionless_encoder_still_serves_hidden_state_adapters(sd15_model, make_adapter,
                                                                     projectionless_vit_h, reference_images):
    plus = make_adapter(sd15_model, "sd15_plus")
    patched = apply_adapter(sd15_model, plus, projectionless_vit_h, reference_images[:1])
    assert first_plan(patched).cond_tokens.shape == (1, 16, 768)


def test_the_hosts_own_loading_of_a_projectionless_file_gets_the_encoder_error(sd15_model, sd15_adapter,
                                                                               reference_images):
    from support.tiny_clip import make_clip_vision
    clip = make_clip_vision("vit-h", seed=8)
    state = {k: v for k, v in clip.model.state_dict().items() if k != "visual_projection.weight"}
    clip.load_sd(state)
    if not isinstance(clip.model.visual_projection, torch.nn.Identity):
        pytest.skip("this host keeps a (never loaded) Linear projection for such files")
    with pytest.raises(EncoderMismatchError, match="without its visual projection"):
        apply_adapter(sd15_model, sd15_adapter, clip, reference_images[:1])


# --------------------------------------------------------------------------- sharing on clone
def test_a_clone_of_a_patched_model_shares_patches_weights_and_tokens(sd15_model, sd15_adapter, clip_vit_h,
                                                                      reference_images):
    patched = apply_adapter(sd15_model, sd15_adapter, clip_vit_h, reference_images[:1])
    clone = patched.clone()  # v0.3.75 deep-copies model_options here; 0.33 copies only dicts and lists
    ours, theirs = attn2_patches(patched), attn2_patches(clone)
    assert ours.keys() == theirs.keys()
    for key, patch in ours.items():
        assert theirs[key].plans == patch.plans  # the same plan objects
        assert all(a is b for a, b in zip(theirs[key].plans, patch.plans))
        assert theirs[key].layer is patch.layer
    assert {id(m) for m in clone.model_patches_models()} == {id(sd15_adapter.patcher)}
    assert torch.equal(ksample(clone, "sd15"), ksample(patched, "sd15"))


def test_deep_copying_model_options_never_duplicates_adapter_weights(sd15_model, sd15_adapter, clip_vit_h,
                                                                     reference_images):
    patched = apply_adapter(sd15_model, sd15_adapter, clip_vit_h, reference_images[:1])
    copied = copy.deepcopy(patched.model_options)  # what other packs and older hosts do
    plan = first_plan(patched)
    copied_plan = next(iter(copied["transformer_options"]["patches_replace"]["attn2"].values())).plans[0]
    assert copied_plan is plan and copied_plan.adapter is sd15_adapter
    assert copied_plan.cond_tokens.data_ptr() == plan.cond_tokens.data_ptr()


def test_patching_a_clone_further_leaves_the_first_model_as_it_was(sd15_model, sd15_adapter, make_adapter,
                                                                  clip_vit_h, reference_images):
    patched = apply_adapter(sd15_model, sd15_adapter, clip_vit_h, reference_images[:1])
    before = ksample(patched, "sd15")
    plus = make_adapter(sd15_model, "sd15_plus", ext=".bin")
    both = apply_adapter(patched.clone(), plus, clip_vit_h, reference_images[1:2])
    assert all(len(p.plans) == 1 for p in attn2_patches(patched).values())
    assert all(len(p.plans) == 2 for p in attn2_patches(both).values())
    assert torch.equal(ksample(patched, "sd15"), before)
    assert not torch.equal(ksample(both, "sd15"), before)
