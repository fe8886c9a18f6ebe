"""ComfyUI_IPAdapter_plus's embeddings, image, weights and regional-parameters nodes on our engine."""
import os
import shlex
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import folder_paths
import torch

from ..ip_models.image_prep import prep_for_clip
from ..ip_models.noise import make_noise
from ..nodes.embeds import output_and_input_files, save_numbered
from ..nodes.frame_weights import _outputs as weights_outputs
from ..nodes.regions import IPAKitRegion
from ..patching import embeds as engine
from ..patching.frame_schedule import WeightsStrategy, prompt_schedule
from .factory import node
from .inputs import EMBEDS, PARAMS, STRATEGY
from .pipeline import needs_clip, resolve

PICKLE = ".ipadpt"  # the leading pack's embeddings: pickles, never unpickled here
CONVERTER = Path(__file__).resolve().parents[1] / "scripts" / "convert_embeds.py"
WEIGHTS_OUT = (("FLOAT", "weights"), ("FLOAT", "weights_invert"), ("INT", "total_frames"), ("IMAGE", "image_1"),
               ("IMAGE", "image_2"), (STRATEGY, "weights_strategy"))


def _encode(ipadapter, image, weight, mask=None, clip_vision=None):
    pipeline = resolve(ipadapter, clip_vision)
    return engine.encode_embeds(pipeline.adapter, needs_clip(pipeline, "IPAdapterEncoder"), image, weight, mask)


def _combine(embed1, method, **more):
    return engine.combine([embed1] + [more[k] for k in sorted(more) if more[k] is not None], method)


def _save(embeds, filename_prefix):
    # numbered: never overwrites (the original always wrote the same file)
    return save_numbered(filename_prefix, engine.SUFFIX, "embeds", lambda path: engine.save(embeds, path))


def converted_name(pickle_name: str) -> str:
    """The file scripts/convert_embeds.py writes for `x.ipadpt`: `x.embeds.safetensors` beside it."""
    return pickle_name[: -len(PICKLE)] + engine.SUFFIX


def embeds_files() -> list[str]:
    """Embeddings in input/ and output/ (' [output]'), .ipadpt pickles included, and for each converted file
    in input/ the name of the pickle it came from: saved workflows name that, and keep validating once
    the pickle is converted and removed."""
    found = output_and_input_files((engine.SUFFIX, PICKLE))
    aliases = {n[: -len(engine.SUFFIX)] + PICKLE for n in found if n.endswith(engine.SUFFIX)}
    return sorted(set(found) | aliases)


def _command(*args: str) -> str:
    return subprocess.list2cmdline(args) if os.name == "nt" else shlex.join(args)


def _load_embeds(embeds):
    path = folder_paths.get_annotated_filepath(embeds)
    if not path.endswith(PICKLE):
        return engine.load(path)
    converted = converted_name(path)
    if os.path.isfile(converted):  # the safetensors twin scripts/convert_embeds.py wrote
        return engine.load(converted)
    if not os.path.isfile(path):
        raise engine.EmbedsError(f"{embeds}: neither it nor {os.path.basename(converted)} is in the folder.")
    raise engine.EmbedsError(
        f"{embeds} is a pickle (ComfyUI_IPAdapter_plus's .ipadpt format), and pickles are never loaded here: they "
        f"can run code. Convert it once (only tensors are read) with\n    "
        f"{_command(sys.executable, str(CONVERTER), path)}\nwhich writes {os.path.basename(converted)} beside it; "
        f"this node then loads that for '{embeds}'.")


def _noise(type, strength, blur, image_optional=None):
    # deterministic for the same image, as the original, but from a local generator (no global side effect)
    seed = 0 if image_optional is None else int(torch.floor(image_optional.float().sum())) % 1000000007
    return make_noise(type, strength, blur, image_optional, seed=seed)


def _weights(weights, timing, frames, start_frame, end_frame, add_starting_frames, add_ending_frames, method,
             image=None):
    strategy = WeightsStrategy(weights, timing, frames, start_frame, end_frame, add_starting_frames,
                               add_ending_frames, method, 0 if image is None else image.shape[0])
    return weights_outputs(strategy, image)


def _from_strategy(weights_strategy, image=None):
    if image is not None:
        weights_strategy = replace(weights_strategy, frame_count=image.shape[0])
    return weights_outputs(weights_strategy, image)


def _combine_weights(weights_1, weights_2):
    joined = [*(weights_1 if isinstance(weights_1, (list, tuple)) else [weights_1]),
              *(weights_2 if isinstance(weights_2, (list, tuple)) else [weights_2])]
    return joined, len(joined)


def _regional(image, image_weight, prompt_weight, weight_type, start_at, end_at, mask=None, positive=None,
              negative=None):
    return IPAKitRegion().region(image, image_weight, prompt_weight, weight_type, start_at, end_at, mask, positive,
                                 negative)


def _combine_params(params_1, params_2, **more):
    return (tuple(params_1) + tuple(params_2) + tuple(p for k in sorted(more) for p in (more[k] or ())),)


NODES = [
    node("IPAdapterEncoder", "IPAdapter Encoder", "ipadapter/embeds", ("ipadapter", "image", "weight@encoder"),
         ("mask", "clip_vision"), ((EMBEDS, "pos_embed"), (EMBEDS, "neg_embed")), _encode),
    node("IPAdapterCombineEmbeds", "IPAdapter Combine Embeds", "ipadapter/embeds", ("embed1", "method@combine"),
         ("embed2", "embed3", "embed4", "embed5"), ((EMBEDS, "EMBEDS"),), _combine),
    node("IPAdapterSaveEmbeds", "IPAdapter Save Embeds", "ipadapter/embeds", ("embeds", "filename_prefix"), (), (),
         _save, output_node=True),
    node("IPAdapterLoadEmbeds", "IPAdapter Load Embeds", "ipadapter/embeds", ("embeds",), (), ((EMBEDS, "EMBEDS"),),
         _load_embeds, file_lists={"embeds": embeds_files}),
    node("IPAdapterNoise", "IPAdapter Noise", "ipadapter/utils", ("type", "strength", "blur"), ("image_optional",),
         (("IMAGE", "IMAGE"),), _noise),
    node("PrepImageForClipVision", "Prep Image For ClipVision", "ipadapter/utils",
         ("image", "interpolation", "crop_position", "sharpening@prep"), (), (("IMAGE", "IMAGE"),),
         lambda image, interpolation, crop_position, sharpening: prep_for_clip(image, 224, interpolation,
                                                                              crop_position, sharpening)),
    node("IPAdapterWeights", "IPAdapter Weights", "ipadapter/weights",
         ("weights", "timing", "frames", "start_frame", "end_frame", "add_starting_frames", "add_ending_frames",
          "method"), ("image",), WEIGHTS_OUT, _weights),
    node("IPAdapterWeightsFromStrategy", "IPAdapter Weights From Strategy", "ipadapter/weights", ("weights_strategy",),
         ("image",), WEIGHTS_OUT, _from_strategy),
    node("IPAdapterPromptScheduleFromWeightsStrategy", "Prompt Schedule From Weights Strategy", "ipadapter/weights",
         ("weights_strategy", "prompt"), (), (("STRING", "prompt_schedule"),),
         lambda weights_strategy, prompt: prompt_schedule(weights_strategy, prompt)),
    node("IPAdapterCombineWeights", "IPAdapter Combine Weights", "ipadapter/utils", ("weights_1", "weights_2"), (),
         (("FLOAT", "weights"), ("INT", "count")), _combine_weights),
    node("IPAdapterRegionalConditioning", "IPAdapter Regional Conditioning", "ipadapter/params",
         ("image", "image_weight", "prompt_weight", "weight_type", "start_at", "end_at"), ("mask", "positive", "negative"),
         ((PARAMS, "IPADAPTER_PARAMS"), ("CONDITIONING", "POSITIVE"), ("CONDITIONING", "NEGATIVE")), _regional),
    node("IPAdapterCombineParams", "IPAdapter Combine Params", "ipadapter/params", ("params_1", "params_2"),
         ("params_3", "params_4", "params_5"), ((PARAMS, "IPADAPTER_PARAMS"),), _combine_params),
]
