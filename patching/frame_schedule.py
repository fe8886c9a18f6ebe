"""Per-frame weights for animations: timing curves over frames, batch strategies, prompt schedules.

Semantics follow ComfyUI_IPAdapter_plus's weights node, with its faults fixed:
- "ease_in" starts slowly and "ease_out" ends slowly (the leading pack has them swapped);
- a ramp of one frame, or a start frame at or after the end frame, no longer divide by zero;
- "random" is reproducible (seeded);
- the prompt schedule places each prompt at the start of its segment, whatever the timing.

A strategy is the node's settings; `schedule` turns it (and the number of reference images) into
the weights, the "inverted" weights (the list reversed, as the leading pack defines it), the total
frame count and which reference image each frame shows in the two image outputs.
"""
from __future__ import annotations

import json
import math
import random
import re
from dataclasses import dataclass

TIMINGS = ("custom", "linear", "ease_in_out", "ease_in", "ease_out", "random")
METHODS = ("full batch", "shift batches", "alternate batches")


@dataclass(frozen=True)
class WeightsStrategy:
    weights: str = "1.0, 0.0"
    timing: str = "linear"
    frames: int = 0
    start_frame: int = 0
    end_frame: int = 9999
    add_starting_frames: int = 0
    add_ending_frames: int = 0
    method: str = "full batch"
    frame_count: int = 0        # reference images the strategy was made for (0: none given)
    seed: int = 0


@dataclass(frozen=True)
class Schedule:
    weights: list[float]
    weights_invert: list[float]
    total_frames: int
    image_1: list[int]          # per frame: which reference image the first image output shows
    image_2: list[int]


def parse_values(text: str) -> list[float]:
    values = []
    for piece in re.split(r"[,\n]", text or ""):
        piece = piece.strip()
        if piece:
            try:
                values.append(float(piece))
            except ValueError:
                raise ValueError(f"weights: '{piece}' is not a number (write values like '1.0, 0.5, 0.0').") from None
    return values


def _ease(timing: str, i: int, n: int) -> float:
    x = i / n
    if timing == "linear":
        return x
    if timing == "ease_in_out":
        return (1 - math.cos(math.pi * x)) / 2
    if timing == "ease_in":  # slow start
        return 1 - math.cos(math.pi * x / 2)
    return math.sin(math.pi * x / 2)  # ease_out: slow end


def segment(strategy: WeightsStrategy) -> list[float]:
    """One segment of weights: a ramp from the first to the last value over `frames` frames."""
    values = parse_values(strategy.weights)
    if strategy.timing == "custom":
        return values or [0.0]
    if strategy.timing not in TIMINGS:
        raise ValueError(f"timing '{strategy.timing}' is not one of: {', '.join(TIMINGS)}.")
    a = values[0] if values else 0.0
    b = values[-1] if values else 1.0
    total = max(strategy.frames, 2)
    end = min(strategy.end_frame, total)
    start = min(strategy.start_frame, end)
    n = end - start - 1
    rng = random.Random(strategy.seed)
    ramp = []
    for i in range(n + 1):
        if i == n:
            ramp.append(b)  # the ramp always ends on the last value
        elif strategy.timing == "random":
            ramp.append(rng.uniform(min(a, b), max(a, b)))
        else:
            ramp.append(a + (b - a) * _ease(strategy.timing, i, n))
    return [a] * start + ramp + [b] * (total - end)


def schedule(strategy: WeightsStrategy, image_count: int = 0) -> Schedule:
    if strategy.method not in METHODS:
        raise ValueError(f"method '{strategy.method}' is not one of: {', '.join(METHODS)}.")
    seg = segment(strategy)
    p = len(seg)
    images = max(image_count, 1)
    if strategy.method == "full batch" or images < 2:
        weights = seg * images
        first = [i for i in range(images) for _ in range(p)]
        second = first
    else:
        transitions = images - 1
        if strategy.method == "shift batches":
            segments = [seg] * transitions
            first_idx = list(range(transitions))
            second_idx = list(range(1, images))
        else:  # alternate batches: every other segment runs backwards; images hand over in turn
            low, high = min(seg), max(seg)
            inverted = [high - (v - low) for v in seg]
            segments = [seg if s % 2 == 0 else inverted for s in range(transitions)]
            first_idx = [2 * ((s + 1) // 2) for s in range(transitions)]
            second_idx = [2 * (s // 2) + 1 for s in range(transitions)]
        weights = [v for s in segments for v in s]
        first = [i for i in first_idx for _ in range(p)]
        second = [i for i in second_idx for _ in range(p)]
    start, end = strategy.add_starting_frames, strategy.add_ending_frames
    if weights:
        weights = [weights[0]] * start + weights + [weights[-1]] * end
        first = [first[0]] * start + first + [first[-1]] * end
        second = [second[0]] * start + second + [second[-1]] * end
    return Schedule(weights, weights[::-1], len(weights), first, second)


def prompt_schedule(strategy: WeightsStrategy, prompt: str) -> str:
    """Lines `"frame": "prompt",` for a batch prompt scheduler: one prompt per reference image."""
    count = strategy.frame_count
    if count <= 0:
        return ""
    prompts = [line.strip() for line in (prompt or "").splitlines() if line.strip()] or [""]
    prompts = (prompts + [prompts[-1]] * count)[:count]
    length = len(segment(strategy))  # frames per segment, whatever the timing
    offset = strategy.add_starting_frames
    keyed = []
    if offset > 0:
        keyed.append((0, prompts[0]))
    keyed += [(i * length + offset, text) for i, text in enumerate(prompts)]
    if strategy.add_ending_frames > 0:
        keyed.append((count * length + offset, prompts[-1]))
    return "\n".join(f'"{frame}": {json.dumps(text, ensure_ascii=False)},' for frame, text in keyed)
