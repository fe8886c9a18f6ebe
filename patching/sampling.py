"""What the attention patch needs to know about the current sampling step, without a device sync.

Two wrappers, installed once per patched MODEL:
- around the guider's outer sample: the uuids of the positive conditioning, so each batch chunk
  can be told positive or not under any guider (CFG, DualCFG, PerpNeg, ...);
- around apply_model: the current sigma as a Python float, read once per model call (not once per
  layer, and only when some adapter has a partial start/end window).
"""
from __future__ import annotations

import logging

import comfy.patcher_extension as pe

POSITIVE_UUIDS = "ipakit_positive_uuids"
SIGMA = "ipakit_sigma"
WRAPPER_KEY = "ipakit"

log = logging.getLogger(__name__)


def _outer_sample(executor, *args, **kwargs):
    guider = executor.class_obj
    positive = frozenset(c["uuid"] for c in (getattr(guider, "conds", None) or {}).get("positive", ())
                         if "uuid" in c)
    guider.model_options.setdefault("transformer_options", {})[POSITIVE_UUIDS] = positive
    return executor(*args, **kwargs)


def _apply_model(executor, x, t, *args, **kwargs):
    options = args[3] if len(args) > 3 else kwargs.get("transformer_options")
    if options is not None:
        options[SIGMA] = float(t.reshape(-1)[0])  # the one host read of the step
    return executor(x, t, *args, **kwargs)


def install(model, needs_sigma: bool) -> None:
    if not model.get_wrappers(pe.WrappersMP.OUTER_SAMPLE, WRAPPER_KEY):
        model.add_wrapper_with_key(pe.WrappersMP.OUTER_SAMPLE, WRAPPER_KEY, _outer_sample)
    if needs_sigma and not model.get_wrappers(pe.WrappersMP.APPLY_MODEL, WRAPPER_KEY):
        model.add_wrapper_with_key(pe.WrappersMP.APPLY_MODEL, WRAPPER_KEY, _apply_model)


def chunk_positivity(extra_options) -> tuple[bool, ...]:
    """One flag per batch chunk: does it carry the positive conditioning?"""
    cond_or_uncond = extra_options.get("cond_or_uncond") or [0]
    positive = extra_options.get(POSITIVE_UUIDS)
    uuids = extra_options.get("uuids")
    if positive and uuids and len(uuids) == len(cond_or_uncond):
        return tuple(u in positive for u in uuids)
    # Outside a guider, or one without a "positive" cond: ComfyUI's convention is 0 = positive.
    return tuple(c == 0 for c in cond_or_uncond)


def current_sigma(extra_options) -> float:
    sigma = extra_options.get(SIGMA)
    if sigma is None:
        # Only reached when the model is called outside a sampler: read it here instead.
        sigma = float(extra_options["sigmas"].reshape(-1)[0])
    return sigma


def frame_window(extra_options):
    """(frame indices, total frames) when the model sees a context window of an animation, else None.

    AnimateDiff-Evolved passes `ad_params` (`sub_idxs`, `full_length`); ComfyUI's own context
    windows pass `context_window` (`index_list`, `total_frames`, frames on dim 0).
    """
    ad = extra_options.get("ad_params")
    if ad and ad.get("sub_idxs") is not None:
        return tuple(ad["sub_idxs"]), int(ad["full_length"])
    window = extra_options.get("context_window")
    if window is not None and getattr(window, "dim", 0) == 0 and getattr(window, "index_list", None) \
            and getattr(window, "total_frames", 0):
        return tuple(window.index_list), int(window.total_frames)
    return None
