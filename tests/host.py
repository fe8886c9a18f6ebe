"""Locating and importing the real ComfyUI host for tests, benchmarks and the main job.

`COMFYUI_PATH` points at any ComfyUI checkout (a user's own install; `scripts/test.sh` sets it for
the host it runs). Otherwise the host is the `ComfyUI/` beside the running virtual environment
(`.cache/host-<name>/venv` and `.cache/host-<name>/ComfyUI`, made by `scripts/setup.sh`), so
`.cache/host-0.33/venv/bin/python bench/benchmark.py` runs on that host.
"""
from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACK_MODULE = "comfyui_ipadapter_kit"


def comfy_path() -> Path:
    env = os.environ.get("COMFYUI_PATH")
    path = Path(env) if env else Path(sys.prefix).parent / "ComfyUI"
    if not (path / "comfy").is_dir():
        raise RuntimeError(f"No ComfyUI at {path}: run scripts/setup.sh [HOST] and use the python of "
                           f".cache/host-<HOST>/venv, or set COMFYUI_PATH")
    return path


def comfy_version() -> str:
    """The host's own version string (comfyui_version.py), e.g. "0.3.75" or "0.33.0"."""
    text = (comfy_path() / "comfyui_version.py").read_text()
    return text.split("__version__")[1].split('"')[1]


_imported = False


def import_comfy(base_directory: str | None = None):
    """Import ComfyUI in-process (CPU) and return its `nodes` module."""
    global _imported
    if not _imported:
        root = str(comfy_path())
        if root not in sys.path:
            sys.path.insert(0, root)
        import comfy.options
        comfy.options.enable_args_parsing(False)
        import comfy.cli_args
        comfy.cli_args.args.cpu = True
        comfy.cli_args.args.database_url = "sqlite:///:memory:"
        base = base_directory
        if base is None:
            base = tempfile.mkdtemp(prefix="ipakit-comfy-")
            atexit.register(shutil.rmtree, base, ignore_errors=True)
        comfy.cli_args.args.base_directory = base
        import utils.extra_config  # noqa: F401  (must precede `nodes`, see host reference)
        import folder_paths
        folder_paths.set_base_path(base) if hasattr(folder_paths, "set_base_path") else None
        _imported = True
    import nodes
    return nodes


def init_builtin_nodes():
    """Register the host's own extra nodes (comfy_extras: masks, guiders, ...), as main.py does."""
    import asyncio
    import inspect
    nodes = import_comfy()
    if "SolidMask" not in nodes.NODE_CLASS_MAPPINGS:
        result = nodes.init_extra_nodes(init_custom_nodes=False, init_api_nodes=False)
        if inspect.isawaitable(result):
            asyncio.run(result)
    return nodes


def load_pack():
    """Import this repository as a ComfyUI custom node package under a fixed module name."""
    if PACK_MODULE in sys.modules:
        return sys.modules[PACK_MODULE]
    import_comfy()
    spec = importlib.util.spec_from_file_location(
        PACK_MODULE, REPO / "__init__.py", submodule_search_locations=[str(REPO)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACK_MODULE] = module
    spec.loader.exec_module(module)
    return module
