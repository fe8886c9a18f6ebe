"""Input specs shared by the pack's nodes, declared once."""

CATEGORY = "ipadapter_kit"
ADAPTER_TYPE = "IPADAPTER_KIT"

MODEL = ("MODEL", {"tooltip": "The diffusion model to patch; a patched copy is returned, the input stays as it was."})
ADAPTER = (ADAPTER_TYPE, {"tooltip": "An IP-Adapter from the 'Load IP-Adapter (Kit)' node."})
CLIP_VISION = ("CLIP_VISION", {"tooltip": "The CLIP image encoder from the core 'Load CLIP Vision' node. "
                                          "Most adapters need ViT-H; 'sdxl' and 'vit-G' ones need ViT-bigG."})
IMAGE = ("IMAGE", {"tooltip": "The reference image(s). Several images in a batch are attended together."})
WEIGHT = ("FLOAT", {"default": 1.0, "min": -1.0, "max": 5.0, "step": 0.05,
                    "tooltip": "Strength of the image prompt; 0 leaves the model unchanged at no cost."})
START_AT = ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.001,
                      "tooltip": "Fraction of the sampling schedule (by sigma) where the image prompt starts."})
END_AT = ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.001,
                    "tooltip": "Fraction of the sampling schedule (by sigma) where the image prompt stops."})
ATTN_MASK = ("MASK", {"tooltip": "Where in the picture the image prompt acts (white = full strength). "
                                 "One mask, or one per latent image; any size or aspect ratio."})
IMAGE_NEGATIVE = ("IMAGE", {"tooltip": "Optional negative reference; by default the adapter's trained "
                                       "'no image' input is used."})
