"""The attn2 replacement: text attention plus every active adapter's image attention.

`h = Attn(q, K_text, V_text) + sum_j s_j * mask_j * Attn(q, K_ip_j, V_ip_j)`, before the host
applies the layer's output projection, with K_ip, V_ip and s_j looked up from each adapter's plan
(weights per layer and frame, precise swaps and embeds scaling are all decided there, once).
Patches are immutable: applying another adapter builds a new patch holding both plans, so a
cloned MODEL never sees a later change.
"""
from __future__ import annotations

import comfy.ldm.modules.attention as host_attention

from .layers import CrossAttentionLayer
from .plan import AdapterPlan
from .sampling import chunk_positivity, current_sigma, frame_window


def _attention(q, k, v, extra_options, preferred=None):
    # Looked up at call time and called exactly as the host's CrossAttention does, so an inactive
    # patch is bit-identical to no patch, with whichever backend the host chose (and the layer's
    # own method where the host keeps one per layer; older hosts take no such argument).
    kwargs = {} if preferred is None else {"preferred_attention": preferred}
    return host_attention.optimized_attention(q, k, v, extra_options["n_heads"],
                                              attn_precision=extra_options.get("attn_precision"),
                                              transformer_options=extra_options, **kwargs)


class IPAttentionPatch:
    def __init__(self, layer: CrossAttentionLayer, plans: tuple[AdapterPlan, ...], inner=None):
        self.layer = layer
        self.plans = plans
        self.inner = inner  # another pack's attn2 patch that was here first: it computes the text part

    def with_plans(self, plans: tuple[AdapterPlan, ...]) -> "IPAttentionPatch":
        return IPAttentionPatch(self.layer, self.plans + tuple(plans), self.inner)

    def __call__(self, q, k, v, extra_options):
        if self.inner is not None:
            out = self.inner(q, k, v, extra_options)
        else:
            out = _attention(q, k, v, extra_options, self.layer.preferred_attention)
        active = self._active(extra_options)
        if not active:
            return out

        layer_key = self.layer.key
        positive = chunk_positivity(extra_options)
        per_chunk = q.shape[0] // len(positive)
        window = frame_window(extra_options)
        for plan, rule in active:
            k_ip, v_ip, factor = plan.layer_inputs(layer_key, rule, positive, per_chunk, window, q.device, q.dtype)
            ip = _attention(q, k_ip, v_ip, extra_options)
            if plan.mask is not None:
                shape = extra_options["original_shape"]
                ip = ip * plan.token_mask(q.shape[1], (shape[-2], shape[-1]), len(positive), per_chunk, window,
                                          q.device, q.dtype)
            out = out + (ip if factor is None else ip * factor)
        return out

    def _active(self, extra_options):
        sigma = None
        active = []
        for plan in self.plans:
            rule = plan.layers.get(self.layer.key)
            if rule is None:
                continue
            if plan.needs_sigma:
                sigma = current_sigma(extra_options) if sigma is None else sigma
                if not plan.in_window(sigma):
                    continue
            active.append((plan, rule))
        return active

    # --- ComfyUI model-management protocol -------------------------------------------------
    def to(self, device_or_dtype):
        # Our caches are keyed by device and dtype, so a move changes nothing here (MultiGPU calls
        # this from several threads at once); only a foreign inner patch may need to move.
        if self.inner is not None and hasattr(self.inner, "to"):
            self.inner = self.inner.to(device_or_dtype)
        return self

    def models(self):
        found = {id(p.adapter.patcher): p.adapter.patcher for p in self.plans}
        if self.inner is not None and hasattr(self.inner, "models"):
            found.update({id(m): m for m in self.inner.models()})
        return list(found.values())
