"""Every test runs against a real ComfyUI host, imported in-process (see tests/host.py)."""
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import host  # noqa: E402

host.import_comfy()
PACK = host.load_pack()


PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@pytest.fixture(scope="session", autouse=True)
def no_network():
    """No test reaches the network: every proxy variable points at a closed loopback port, so a download
    attempt (insightface's model zip, a hub lookup) fails at once; only the local test server is reached
    directly (NO_PROXY). Child processes (the ComfyUI server) inherit it. Yields the proxy address."""
    import os
    import socket
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    names = PROXY_VARIABLES + ("NO_PROXY", "no_proxy")
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update({name: closed for name in PROXY_VARIABLES})
    os.environ.update({"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"})
    yield closed
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(autouse=True)
def folder_paths_restored():
    """Every test leaves the host's model-folder table as it found it: a folder a test registers (an
    extra_model_paths.yaml, a temporary models folder) never outlives the test, whose temporary
    files are deleted once it passes (tests/pytest.ini)."""
    import folder_paths
    table = folder_paths.folder_names_and_paths
    saved = {name: (list(paths), set(extensions)) for name, (paths, extensions) in table.items()}
    yield
    table.clear()
    table.update(saved)
    folder_paths.filename_list_cache.clear()


@pytest.fixture(scope="session")
def pack():
    return PACK


@pytest.fixture(scope="session")
def sd15_model():
    from support.tiny_unets import make_comfy_unet
    return make_comfy_unet("sd15", seed=0)


@pytest.fixture(scope="session")
def sdxl_model():
    from support.tiny_unets import make_comfy_unet
    return make_comfy_unet("sdxl", seed=1)


@pytest.fixture(scope="session")
def sdxl_layout_model():
    """SDXL's block ids in miniature: the style and composition blocks exist."""
    from support.tiny_unets import make_comfy_unet
    return make_comfy_unet("sdxl_layout", seed=4)


@pytest.fixture(scope="session")
def models(sd15_model, sdxl_model):
    """The oracle's two tiny UNets by family."""
    return {"sd15": sd15_model, "sdxl": sdxl_model}


@pytest.fixture(scope="session")
def diffusers_unets(models):
    """diffusers twins of the oracle's tiny UNets, with the same weights."""
    from support.tiny_unets import make_diffusers_unet
    return {family: make_diffusers_unet(model, family) for family, model in models.items()}


@pytest.fixture(scope="session")
def clip_vit_h():
    from support.tiny_clip import make_clip_vision
    return make_clip_vision("vit-h", seed=2)


@pytest.fixture(scope="session")
def clip_vit_bigg():
    from support.tiny_clip import make_clip_vision
    return make_clip_vision("vit-bigg", seed=3)


@pytest.fixture(scope="session")
def adapter_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("ipadapter")


@pytest.fixture(scope="session")
def make_adapter(adapter_dir):
    """make_adapter(model, variant, ext=".safetensors", seed=0) -> LoadedAdapter read from a real file."""
    from support.checkpoints import make_adapter_state_dict, save_adapter
    from comfyui_ipadapter_kit.patching.adapter_handle import load_adapter
    from comfyui_ipadapter_kit.patching.layers import cross_attention_layers

    def make(model, variant, ext=".safetensors", seed=0, name=None):
        widths = [layer.width for layer in cross_attention_layers(model.model.diffusion_model)]
        layout = "-".join(map(str, widths))  # tiny UNets with equal layer counts differ in widths
        path = adapter_dir / (name or f"ip-adapter_{variant}_{layout}_{seed}{ext}")
        if not path.exists():
            save_adapter(make_adapter_state_dict(variant, widths, seed=seed), path)
        return load_adapter(str(path))
    return make


@pytest.fixture(scope="session")
def reference_images():
    gen = torch.Generator().manual_seed(5)
    return torch.rand(3, 64, 64, 3, generator=gen)


@pytest.fixture(scope="session")
def inproc(pack):
    """The host's executor in-process, with the host's own extra nodes and this pack registered."""
    import folder_paths
    from pathlib import Path
    from support.host_models import write_reference_image
    from support.inprocess import InProcessHost
    nodes = host.init_builtin_nodes()
    for name, cls in pack.NODE_CLASS_MAPPINGS.items():
        nodes.NODE_CLASS_MAPPINGS.setdefault(name, cls)
    write_reference_image(Path(folder_paths.get_input_directory()))
    return InProcessHost()


@pytest.fixture(scope="session")
def sd15_names():
    """Generated SD1.5 models (and a ControlNet) in the in-process host's models folder."""
    import folder_paths
    from support.host_models import prepare_models
    return prepare_models(folder_paths.models_dir, which=("sd15", "controlnet", "faceid"))
