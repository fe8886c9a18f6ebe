"""Frame weights and prompt schedules: the leading pack's strategies, with its faults fixed."""
import math

import pytest
import torch

from comfyui_ipadapter_kit.nodes import NODE_CLASS_MAPPINGS as NODES
from comfyui_ipadapter_kit.patching.frame_schedule import WeightsStrategy, prompt_schedule, schedule, segment


def ramp(timing, frames=5, **kw):
    return segment(WeightsStrategy("0.0, 1.0", timing, frames, **kw))


def test_custom_timing_keeps_the_values_as_typed():
    assert segment(WeightsStrategy("1, 0.5,\n0.25", "custom")) == [1.0, 0.5, 0.25]


def test_a_linear_ramp_runs_from_the_first_to_the_last_value():
    assert ramp("linear") == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])


def test_ease_in_starts_slowly_and_ease_out_ends_slowly():
    ease_in, ease_out = ramp("ease_in"), ramp("ease_out")
    assert ease_in[1] < 0.25 < ease_out[1]  # below / above the linear ramp after one step
    assert ease_in[1] == pytest.approx(1 - math.cos(math.pi / 8))
    assert ease_in[-1] == ease_out[-1] == 1.0
    in_out = ramp("ease_in_out")
    assert in_out[2] == pytest.approx(0.5) and in_out[1] < 0.25


def test_random_timing_is_reproducible_and_within_the_range():
    a, b = ramp("random", 8, seed=3), ramp("random", 8, seed=3)
    assert a == b and a != ramp("random", 8, seed=4)
    assert all(0.0 <= v <= 1.0 for v in a) and a[-1] == 1.0


def test_start_and_end_frames_hold_the_first_and_last_values():
    values = ramp("linear", 8, start_frame=2, end_frame=5)
    assert values == pytest.approx([0, 0, 0, 0.5, 1, 1, 1, 1])


@pytest.mark.parametrize("kw", [dict(start_frame=4, end_frame=5), dict(start_frame=7, end_frame=5),
                                dict(start_frame=0, end_frame=0)])
def test_degenerate_ranges_do_not_divide_by_zero(kw):
    values = ramp("linear", 6, **kw)
    assert len(values) == 6 and set(values) <= {0.0, 1.0}


def test_full_batch_gives_each_image_a_whole_segment():
    plan = schedule(WeightsStrategy("1.0, 0.0", "linear", 3), image_count=2)
    assert plan.weights == pytest.approx([1, 0.5, 0, 1, 0.5, 0])
    assert plan.image_1 == [0, 0, 0, 1, 1, 1] and plan.total_frames == 6
    assert plan.weights_invert == plan.weights[::-1]


def test_shift_batches_cross_fade_each_image_into_the_next():
    plan = schedule(WeightsStrategy("1.0, 0.0", "linear", 2, method="shift batches"), image_count=3)
    assert plan.weights == [1.0, 0.0, 1.0, 0.0]
    assert plan.image_1 == [0, 0, 1, 1] and plan.image_2 == [1, 1, 2, 2]


def test_alternate_batches_reverse_every_other_segment():
    plan = schedule(WeightsStrategy("1.0, 0.0", "linear", 2, method="alternate batches"), image_count=4)
    assert plan.weights == [1.0, 0.0, 0.0, 1.0, 1.0, 0.0]
    assert plan.image_1 == [0, 0, 2, 2, 2, 2] and plan.image_2 == [1, 1, 1, 1, 3, 3]


def test_added_frames_repeat_the_first_and_last_weight_and_image():
    plan = schedule(WeightsStrategy("1.0, 0.0", "linear", 2, add_starting_frames=2, add_ending_frames=1,
                                    method="shift batches"), image_count=2)
    assert plan.weights == [1.0, 1.0, 1.0, 0.0, 0.0]
    assert plan.image_1 == [0] * 5 and plan.image_2 == [1] * 5


def test_the_prompt_schedule_starts_each_prompt_at_its_segment_even_with_custom_timing():
    strategy = WeightsStrategy("1, 0.5, 0", "custom", frames=0, add_starting_frames=2, add_ending_frames=1,
                               frame_count=2)
    text = prompt_schedule(strategy, 'a "red" fox\n\nthe sea\n')
    assert text.splitlines() == ['"0": "a \\"red\\" fox",', '"2": "a \\"red\\" fox",', '"5": "the sea",',
                                 '"8": "the sea",']
    assert prompt_schedule(WeightsStrategy(frame_count=0), "x") == ""


def test_the_weights_node_returns_images_per_frame_and_its_strategy():
    images = torch.arange(3, dtype=torch.float32).view(3, 1, 1, 1).expand(3, 2, 2, 3)
    weights, invert, total, image_1, image_2, strategy = NODES["IPAKitFrameWeights"]().weights(
        "1.0, 0.0", "linear", 2, 0, 9999, 0, 0, "shift batches", 0, image=images)
    assert total == 4 and weights == [1.0, 0.0, 1.0, 0.0] and invert == weights[::-1]
    assert image_1[:, 0, 0, 0].tolist() == [0, 0, 1, 1] and image_2[:, 0, 0, 0].tolist() == [1, 1, 2, 2]
    again = NODES["IPAKitFrameWeightsFromStrategy"]().weights(strategy, image=images[:2])
    assert again[2] == 2 and again[3][:, 0, 0, 0].tolist() == [0, 0]
    (text,) = NODES["IPAKitPromptSchedule"]().schedule(strategy, "one\ntwo\nthree")
    assert text.splitlines() == ['"0": "one",', '"2": "two",', '"4": "three",']


def test_a_weight_that_is_not_a_number_is_named():
    with pytest.raises(ValueError, match="weights: 'high' is not a number"):
        segment(WeightsStrategy("1.0, high", "custom"))


def test_the_prompt_schedule_keeps_prompts_in_any_language_readable():
    text = prompt_schedule(WeightsStrategy("1, 0", "custom", frame_count=1), "ein Bär im Schnee, 雪の中")
    assert text == '"0": "ein Bär im Schnee, 雪の中",'
