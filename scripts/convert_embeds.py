"""Convert ComfyUI_IPAdapter_plus embeddings (.ipadpt pickles) to this pack's safetensors format.

    python scripts/convert_embeds.py FILE.ipadpt [--clip-input penultimate|image_embeds]

The pickle is opened with torch.load(weights_only=True): only tensors are read, never code. The
result, FILE.embeds.safetensors, lies beside it; 'Load Embeds (Kit)' lists it. The CLIP output is
guessed from the shape ([N, D]: pooled image_embeds; [N, tokens, width]: penultimate hidden
states) unless given.
"""
import argparse
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

WIDTH_TO_ENCODER = {("image_embeds", 1024): "ViT-H-14", ("image_embeds", 1280): "ViT-bigG-14",
                    ("penultimate", 1280): "ViT-H-14", ("penultimate", 1664): "ViT-bigG-14",
                    ("penultimate", 1024): "ViT-L-14-336"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file")
    parser.add_argument("--clip-input", choices=("penultimate", "image_embeds"))
    args = parser.parse_args()
    src = Path(args.file)
    tensor = torch.load(src, map_location="cpu", weights_only=True)
    if not torch.is_tensor(tensor):
        sys.exit(f"{src} does not hold a tensor")
    clip_input = args.clip_input or ("penultimate" if tensor.ndim == 3 else "image_embeds")
    meta = {"format": "ipakit-embeds/1", "clip_input": clip_input,
            "encoder": WIDTH_TO_ENCODER.get((clip_input, tensor.shape[-1]), ""), "variant": "",
            "shape": json.dumps(list(tensor.shape))}
    out = src.with_name(src.stem + ".embeds.safetensors")
    save_file({"embeds": tensor.float().contiguous()}, str(out), metadata=meta)
    print(out)


if __name__ == "__main__":
    main()
