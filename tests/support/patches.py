"""Looking into a patched MODEL from tests: its attn2 patches, plans and attention calls."""
import comfy.ldm.modules.attention as host_attention


def attn2_patches(model) -> dict:
    return model.model_options["transformer_options"].get("patches_replace", {}).get("attn2", {})


def first_plan(model):
    """The first adapter plan on the first patched layer."""
    return next(iter(attn2_patches(model).values())).plans[0]


def count_attention_calls(monkeypatch) -> list:
    """Every call of the host's optimized_attention (text, image and self-attention) appends to the list."""
    calls = []
    original = host_attention.optimized_attention

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)
    monkeypatch.setattr(host_attention, "optimized_attention", counting)
    return calls


def relative_error(ours, reference) -> float:
    return ((ours - reference).abs().max() / reference.abs().max()).item()
