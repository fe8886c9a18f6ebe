"""The pack's model folders: models/ipadapter and models/insightface, plus any `ipadapter:` or
`insightface:` entry of extra_model_paths.yaml."""
import os

import folder_paths

FOLDER = "ipadapter"
INSIGHTFACE = "insightface"
EXTENSIONS = {".safetensors", ".bin"}


def _register(name: str, extensions: set) -> None:
    default = os.path.join(folder_paths.models_dir, name)
    paths, exts = folder_paths.folder_names_and_paths.get(name, ([], set()))
    if default not in paths:
        paths = [default, *paths]
    folder_paths.folder_names_and_paths[name] = (paths, set(exts) | extensions)


def register() -> None:
    _register(FOLDER, EXTENSIONS)
    _register(INSIGHTFACE, {".onnx"})
