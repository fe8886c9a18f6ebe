"""The `ipadapter` model folder: models/ipadapter plus any `ipadapter:` entry of extra_model_paths.yaml."""
import os

import folder_paths

FOLDER = "ipadapter"
EXTENSIONS = {".safetensors", ".bin"}


def register() -> None:
    default = os.path.join(folder_paths.models_dir, FOLDER)
    paths, exts = folder_paths.folder_names_and_paths.get(FOLDER, ([], set()))
    if default not in paths:
        paths = [default, *paths]
    folder_paths.folder_names_and_paths[FOLDER] = (paths, set(exts) | EXTENSIONS)
