"""Per-frame weights for animations, and a prompt schedule that follows them."""
from dataclasses import replace

import torch

from ..patching.frame_schedule import WeightsStrategy, prompt_schedule, schedule
from . import inputs

def _outputs(strategy: WeightsStrategy, image):
    plan = schedule(strategy, 0 if image is None else image.shape[0])
    pick = (lambda rows: None) if image is None else (lambda rows: image[torch.tensor(rows, dtype=torch.long)])
    return (plan.weights, plan.weights_invert, plan.total_frames, pick(plan.image_1), pick(plan.image_2), strategy)


class _FrameWeightsOutputs:
    CATEGORY = inputs.CATEGORY
    RETURN_TYPES = ("FLOAT", "FLOAT", "INT", "IMAGE", "IMAGE", inputs.STRATEGY_TYPE)
    RETURN_NAMES = ("weights", "weights_invert", "total_frames", "image_1", "image_2", "weights_strategy")
    OUTPUT_TOOLTIPS = ("One weight per frame, for the weight input of 'Apply IP-Adapter Batch (Kit)'.",
                       "The same list reversed, for a second adapter that cross-fades with the first.",
                       "How many frames the weights cover.",
                       "Per frame, the reference image that goes with 'weights' (None without images).",
                       "Per frame, the reference image that goes with 'weights_invert' (None without images).",
                       "These settings, for 'Frame Weights From Strategy (Kit)' and 'Prompt Schedule (Kit)'.")
    FUNCTION = "weights"


class IPAKitFrameWeights(_FrameWeightsOutputs):
    DESCRIPTION = ("Weights over animation frames: typed values, or a ramp with a timing curve; with several "
                   "reference images, how they follow or cross-fade (full, shift or alternate batches).")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"weights": inputs.WEIGHTS_TEXT, "timing": inputs.TIMING, "frames": inputs.FRAMES,
                             "start_frame": inputs.START_FRAME, "end_frame": inputs.END_FRAME,
                             "add_starting_frames": inputs.ADD_STARTING, "add_ending_frames": inputs.ADD_ENDING,
                             "method": inputs.METHOD, "seed": inputs.SEED},
                "optional": {"image": inputs.STRATEGY_IMAGE}}

    def weights(self, weights, timing, frames, start_frame, end_frame, add_starting_frames, add_ending_frames,
                method, seed, image=None):
        strategy = WeightsStrategy(weights, timing, frames, start_frame, end_frame, add_starting_frames,
                                   add_ending_frames, method, 0 if image is None else image.shape[0], seed)
        return _outputs(strategy, image)


class IPAKitFrameWeightsFromStrategy(_FrameWeightsOutputs):
    DESCRIPTION = "The weights and images of a saved strategy again, optionally for other reference images."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"weights_strategy": inputs.STRATEGY}, "optional": {"image": inputs.STRATEGY_IMAGE}}

    def weights(self, weights_strategy, image=None):
        if image is not None:
            weights_strategy = replace(weights_strategy, frame_count=image.shape[0])
        return _outputs(weights_strategy, image)


class IPAKitPromptSchedule:
    DESCRIPTION = ("A batch prompt schedule ('\"frame\": \"prompt\",' lines) that starts each prompt where its "
                   "reference image's segment starts.")
    CATEGORY = inputs.CATEGORY
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("prompt_schedule",)
    OUTPUT_TOOLTIPS = ("For a batch prompt scheduler node.",)
    FUNCTION = "schedule"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"weights_strategy": inputs.STRATEGY, "prompt": inputs.PROMPTS}}

    def schedule(self, weights_strategy, prompt):
        return (prompt_schedule(weights_strategy, prompt),)
