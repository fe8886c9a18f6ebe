"""The compatibility Load Embeds and ComfyUI_IPAdapter_plus's `.ipadpt` pickles: saved workflows name
them, the node lists them, loads the converted safetensors twin under the pickle's name, and otherwise
refuses with the exact command that converts it. Nothing is ever unpickled."""
import pickle
import shlex
import subprocess

import pytest
import torch

from comfyui_ipadapter_kit import compat
from comfyui_ipadapter_kit.patching import embeds as engine


@pytest.fixture
def load_embeds():
    return compat.mappings()[0]["IPAdapterLoadEmbeds"]


@pytest.fixture
def input_dir(tmp_path, monkeypatch):
    import folder_paths
    monkeypatch.setattr(folder_paths, "input_directory", str(tmp_path))
    return tmp_path


@pytest.fixture
def no_unpickling(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("something was unpickled")
    for module, name in ((torch, "load"), (pickle, "load"), (pickle, "loads")):
        monkeypatch.setattr(module, name, refuse)


def listed(node) -> list:
    return node.INPUT_TYPES()["required"]["embeds"][0]


def test_a_converted_pickle_loads_under_its_ipadpt_name(load_embeds, input_dir, no_unpickling):
    features = torch.randn(2, 1024, generator=torch.Generator().manual_seed(1))
    (input_dir / "faces").mkdir()
    converted = input_dir / "faces" / "anna.embeds.safetensors"  # what scripts/convert_embeds.py writes
    engine.save(engine.Embeds(features, "image_embeds", "ViT-H-14"), str(converted))
    assert {"faces/anna.ipadpt", "faces/anna.embeds.safetensors"} <= set(listed(load_embeds))  # the pickle is gone
    (loaded,) = load_embeds().execute(embeds="faces/anna.ipadpt")
    assert torch.equal(loaded.features, features) and loaded.clip_input == "image_embeds"


def test_an_unconverted_pickle_is_listed_and_refused_with_the_command_that_converts_it(load_embeds, input_dir,
                                                                                      monkeypatch):
    features = torch.randn(1, 257, 1280, generator=torch.Generator().manual_seed(2))
    torch.save(features, input_dir / "old style.ipadpt")  # what the leading pack's Save Embeds wrote
    assert "old style.ipadpt" in listed(load_embeds)
    original_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("the node unpickled the file"))
    with pytest.raises(engine.EmbedsError, match=r"is a pickle .* never loaded here") as refused:
        load_embeds().execute(embeds="old style.ipadpt")
    command = str(refused.value).split("\n")[1].strip()
    monkeypatch.setattr(torch, "load", original_load)  # the converter runs in its own process
    subprocess.run(shlex.split(command), check=True, capture_output=True, timeout=300)
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("the node unpickled the file"))
    (loaded,) = load_embeds().execute(embeds="old style.ipadpt")
    assert torch.equal(loaded.features, features) and loaded.clip_input == "penultimate"


def test_a_missing_ipadpt_without_its_twin_says_neither_is_there(load_embeds, input_dir, no_unpickling):
    with pytest.raises(engine.EmbedsError, match="neither it nor gone.embeds.safetensors is in the folder"):
        load_embeds().execute(embeds="gone.ipadpt")
