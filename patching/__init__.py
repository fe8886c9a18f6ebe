"""The one place that talks to ComfyUI's ModelPatcher: attention patches, sampling hooks,
model management of adapter weights and CLIP vision encoding."""
