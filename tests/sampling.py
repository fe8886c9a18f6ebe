"""Running the host's real samplers and guiders on a tiny model, for behaviour tests."""
import torch

import comfy.sample
import comfy.samplers

CONTEXT = {"sd15": 768, "sdxl": 2048}


def conditioning(family: str, seed: int, batch: int = 1):
    gen = torch.Generator().manual_seed(seed)
    extra = {}
    if family == "sdxl":
        extra = {"pooled_output": torch.randn(batch, 1280, generator=gen), "width": 64, "height": 64}
    return [[torch.randn(batch, 77, CONTEXT[family], generator=gen), extra]]


def ksample(model, family: str, steps: int = 3, cfg: float = 5.0, size: int = 8, batch: int = 1,
            seed: int = 0, sampler: str = "euler", callback=None):
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(batch, 4, size, size, generator=gen)
    latent = torch.zeros_like(noise)
    return comfy.sample.sample(model, noise, steps, cfg, sampler, "normal", conditioning(family, 1),
                               conditioning(family, 2), latent, seed=seed, disable_pbar=True, callback=callback)


def guided_sample(guider, model, steps: int = 2, size: int = 8, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(1, 4, size, size, generator=gen)
    sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), "normal", steps)
    sampler = comfy.samplers.sampler_object("euler")
    return guider.sample(noise, torch.zeros_like(noise), sampler, sigmas, disable_pbar=True, seed=seed)
