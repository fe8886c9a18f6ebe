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


def record_layer_inputs(monkeypatch) -> list:
    """Every plan lookup the patch makes while sampling, with the batch layout the host sent.

    Appends one dict per (layer, plan) call: `plan`, `key`, `rule`, `positive` (the patch's flags),
    `cond_or_uncond` (the host's: the index of each chunk's conditioning in the list the guider
    batched) and `out` (K, V, output factor), so a test can tell the positive chunk independently.
    """
    from comfyui_ipadapter_kit.patching import cross_attention
    from comfyui_ipadapter_kit.patching.plan import AdapterPlan
    seen, layout = [], {}
    original_flags, original_inputs = cross_attention.chunk_positivity, AdapterPlan.layer_inputs

    def flags(extra_options):
        layout["cond_or_uncond"] = tuple(extra_options["cond_or_uncond"])  # read right before the lookups
        return original_flags(extra_options)

    def inputs(self, layer_key, rule, positive, *args):
        out = original_inputs(self, layer_key, rule, positive, *args)
        seen.append(dict(plan=self, key=layer_key, rule=rule, positive=positive,
                         cond_or_uncond=layout["cond_or_uncond"], out=out))
        return out
    monkeypatch.setattr(cross_attention, "chunk_positivity", flags)
    monkeypatch.setattr(AdapterPlan, "layer_inputs", inputs)
    return seen
