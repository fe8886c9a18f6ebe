"""Write the example workflows of the controls (editor files in workflows/, API twins in workflows/api/).

    .cache/host-v0.3.75/venv/bin/python scripts/make_workflows.py

Each workflow is defined once below as a graph (tests/support/workflow_builder.py); the editor file
and its API twin are both generated from it, with the real model names users have. The tests run
every one of them on generated tiny models and check that the twins agree.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

SD15_CKPT = "v1-5-pruned-emaonly-fp16.safetensors"
SDXL_CKPT = "sd_xl_base_1.0.safetensors"
VIT_H = "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors"
NEGATIVE = "blurry, low quality, watermark, text"
FILES = ("- `models/checkpoints/`: {ckpt}\n- `models/clip_vision/`: `" + VIT_H + "` (OpenCLIP ViT-H/14)\n"
         "- `models/ipadapter/`: {adapters}\n")


def _sampler(g, model, clip, vae, positive_text, size, prefix, batch=1, positive=None, negative=None):
    pos = positive or g.add("CLIPTextEncode", "Positive prompt", text=positive_text, clip=clip).out()
    neg = negative or g.add("CLIPTextEncode", "Negative prompt", text=NEGATIVE, clip=clip).out()
    latent = g.add("EmptyLatentImage", width=size, height=size, batch_size=batch)
    sampled = g.add("KSampler", model=model, seed=42, steps=30, cfg=6.5, sampler_name="dpmpp_2m",
                    scheduler="karras", positive=pos, negative=neg, latent_image=latent.out(), denoise=1.0)
    image = g.add("VAEDecode", samples=sampled.out(), vae=vae)
    g.add("SaveImage", images=image.out(), filename_prefix=prefix)


def _base(g, ckpt):
    checkpoint = g.add("CheckpointLoaderSimple", ckpt_name=ckpt)
    clip_vision = g.add("CLIPVisionLoader", clip_name=VIT_H)
    return checkpoint, clip_vision


def style_transfer(Graph):
    g = Graph("sd15_style_transfer")
    g.note("## Style transfer (SD1.5)\n\n**Apply IP-Adapter Advanced (Kit)** with weight type *style transfer* "
           "puts the reference only on the style layers, so its colours, textures and medium come through "
           "while the prompt decides the subject. Try *style transfer precise* (a node of its own) to keep "
           "even more of the layout out. See docs/controls.md.\n\nModel files:\n\n"
           + FILES.format(ckpt=f"`{SD15_CKPT}` (any SD1.5 checkpoint)", adapters="`ip-adapter-plus_sd15.safetensors`"))
    ckpt, clip_vision = _base(g, SD15_CKPT)
    ref = g.add("LoadImage", "Style reference", image="style.png")
    adapter = g.add("IPAKitAdapterLoader", adapter_name="ip-adapter-plus_sd15.safetensors")
    model = g.add("IPAKitApplyAdvanced", model=ckpt.out(0), ipadapter=adapter.out(), clip_vision=clip_vision.out(),
                  image=ref.out(), weight=1.0, weight_type="style transfer", combine_embeds="concat",
                  start_at=0.0, end_at=1.0, embeds_scaling="V only", layer_weights="")
    _sampler(g, model.out(), ckpt.out(1), ckpt.out(2), "a cat sitting on a chair", 512, "ipakit_style")
    return g


def style_composition(Graph):
    g = Graph("sdxl_style_composition")
    g.note("## Style & Composition (SDXL)\n\n**Style & Composition (Kit)** takes the style of one image "
           "and the layout of another, each on its own layers (InstantStyle's blocks). `expand_style` puts "
           "the style on every non-composition layer. Works on SD1.5 too, with a looser split.\n\n"
           "Model files:\n\n" + FILES.format(ckpt=f"`{SDXL_CKPT}` (any SDXL checkpoint)",
                                             adapters="`ip-adapter-plus_sdxl_vit-h.safetensors`"))
    ckpt, clip_vision = _base(g, SDXL_CKPT)
    style = g.add("LoadImage", "Style image", image="style.png")
    layout = g.add("LoadImage", "Composition image", image="composition.png")
    adapter = g.add("IPAKitAdapterLoader", adapter_name="ip-adapter-plus_sdxl_vit-h.safetensors")
    model = g.add("IPAKitStyleComposition", model=ckpt.out(0), ipadapter=adapter.out(), clip_vision=clip_vision.out(),
                  image_style=style.out(), image_composition=layout.out(), weight_style=1.0, weight_composition=1.0,
                  expand_style=False, combine_embeds="average", start_at=0.0, end_at=1.0, embeds_scaling="V only")
    _sampler(g, model.out(), ckpt.out(1), ckpt.out(2), "a house by a lake", 1024, "ipakit_style_composition")
    return g


def regions(Graph):
    g = Graph("sd15_regions")
    g.note("## Regions (SD1.5)\n\nTwo references, one per half of the picture: each **IP-Adapter Region (Kit)** "
           "bundles an image, its mask and weights, and masks its prompt the same way; **Apply IP-Adapter "
           "Regions (Kit)** applies them all in one go. Masks can split the picture in any direction.\n\n"
           "Model files:\n\n" + FILES.format(ckpt=f"`{SD15_CKPT}`", adapters="`ip-adapter_sd15.safetensors`"))
    ckpt, clip_vision = _base(g, SD15_CKPT)
    left_ref = g.add("LoadImage", "Left reference", image="left.png")
    right_ref = g.add("LoadImage", "Right reference", image="right.png")
    empty = g.add("SolidMask", value=0.0, width=512, height=512)
    half = g.add("SolidMask", value=1.0, width=256, height=512)
    left = g.add("MaskComposite", "Left half", destination=empty.out(), source=half.out(), x=0, y=0, operation="add")
    right = g.add("InvertMask", "Right half", mask=left.out())
    adapter = g.add("IPAKitAdapterLoader", adapter_name="ip-adapter_sd15.safetensors")
    text_l = g.add("CLIPTextEncode", "Left prompt", text="a red fox", clip=ckpt.out(1))
    text_r = g.add("CLIPTextEncode", "Right prompt", text="a snowy forest", clip=ckpt.out(1))
    region_l = g.add("IPAKitRegion", image=left_ref.out(), image_weight=1.0, prompt_weight=1.0, weight_type="linear",
                     start_at=0.0, end_at=1.0, mask=left.out(), positive=text_l.out())
    region_r = g.add("IPAKitRegion", image=right_ref.out(), image_weight=0.8, prompt_weight=1.0,
                     weight_type="ease out", start_at=0.0, end_at=1.0, mask=right.out(), positive=text_r.out())
    both = g.add("IPAKitCombineRegions", regions_1=region_l.out(0), regions_2=region_r.out(0))
    model = g.add("IPAKitApplyRegions", model=ckpt.out(0), ipadapter=adapter.out(), clip_vision=clip_vision.out(),
                  regions=both.out(), combine_embeds="concat", embeds_scaling="V only")
    positive = g.add("ConditioningCombine", conditioning_1=region_l.out(1), conditioning_2=region_r.out(1))
    _sampler(g, model.out(), ckpt.out(1), ckpt.out(2), "", 512, "ipakit_regions", positive=positive.out())
    return g


def stack_controlnet(Graph):
    g = Graph("sd15_stack_controlnet")
    g.note("## Two adapters and a ControlNet (SD1.5)\n\nTwo image prompts stacked on one model (one patch per "
           "layer holds both) while a ControlNet fixes the layout.\n\nModel files:\n\n"
           + FILES.format(ckpt=f"`{SD15_CKPT}`", adapters="`ip-adapter_sd15.safetensors`, "
                                                          "`ip-adapter-plus_sd15.safetensors`")
           + "- `models/controlnet/`: `control_v11p_sd15_canny.pth`\n")
    ckpt, clip_vision = _base(g, SD15_CKPT)
    ref_a = g.add("LoadImage", "Reference A", image="reference.png")
    ref_b = g.add("LoadImage", "Reference B", image="reference_b.png")
    hint = g.add("LoadImage", "ControlNet hint (canny edges)", image="canny.png")
    plain = g.add("IPAKitAdapterLoader", adapter_name="ip-adapter_sd15.safetensors")
    plus = g.add("IPAKitAdapterLoader", adapter_name="ip-adapter-plus_sd15.safetensors")
    first = g.add("IPAKitApply", model=ckpt.out(0), ipadapter=plain.out(), clip_vision=clip_vision.out(),
                  image=ref_a.out(), weight=0.6, start_at=0.0, end_at=1.0)
    second = g.add("IPAKitApplyAdvanced", model=first.out(), ipadapter=plus.out(), clip_vision=clip_vision.out(),
                   image=ref_b.out(), weight=0.5, weight_type="ease out", combine_embeds="concat", start_at=0.0,
                   end_at=0.8, embeds_scaling="V only", layer_weights="")
    controlnet = g.add("ControlNetLoader", control_net_name="control_v11p_sd15_canny.pth")
    pos = g.add("CLIPTextEncode", "Positive prompt", text="a portrait, studio light", clip=ckpt.out(1))
    neg = g.add("CLIPTextEncode", "Negative prompt", text=NEGATIVE, clip=ckpt.out(1))
    controlled = g.add("ControlNetApplyAdvanced", positive=pos.out(), negative=neg.out(), control_net=controlnet.out(),
                       image=hint.out(), strength=0.8, start_percent=0.0, end_percent=1.0)
    _sampler(g, second.out(), ckpt.out(1), ckpt.out(2), "", 512, "ipakit_stack_controlnet",
             positive=controlled.out(0), negative=controlled.out(1))
    return g


def animation(Graph):
    g = Graph("sd15_animation_batch")
    g.note("## Animation batch (SD1.5)\n\n**Frame Weights (Kit)** lays 8 frames out as a cross-fade from the "
           "first reference to the second (*shift batches*); two **Apply IP-Adapter Batch (Kit)** nodes give "
           "each frame its image and weight. With AnimateDiff or ComfyUI context windows only the current "
           "window's frames are prepared.\n\nModel files:\n\n"
           + FILES.format(ckpt=f"`{SD15_CKPT}` (with AnimateDiff for motion)", adapters="`ip-adapter_sd15.safetensors`"))
    ckpt, clip_vision = _base(g, SD15_CKPT)
    a = g.add("LoadImage", "First frame reference", image="first.png")
    b = g.add("LoadImage", "Last frame reference", image="last.png")
    refs = g.add("ImageBatch", image1=a.out(), image2=b.out())
    weights = g.add("IPAKitFrameWeights", weights="1.0, 0.0", timing="ease_in_out", frames=8, start_frame=0,
                    end_frame=9999, add_starting_frames=0, add_ending_frames=0, method="shift batches", seed=0,
                    image=refs.out())
    adapter = g.add("IPAKitAdapterLoader", adapter_name="ip-adapter_sd15.safetensors")
    fade_out = g.add("IPAKitApplyBatch", model=ckpt.out(0), ipadapter=adapter.out(), clip_vision=clip_vision.out(),
                     image=weights.out(3), weight=weights.out(0), weight_type="linear", start_at=0.0, end_at=1.0,
                     embeds_scaling="V only")
    fade_in = g.add("IPAKitApplyBatch", model=fade_out.out(), ipadapter=adapter.out(), clip_vision=clip_vision.out(),
                    image=weights.out(4), weight=weights.out(1), weight_type="linear", start_at=0.0, end_at=1.0,
                    embeds_scaling="V only")
    _sampler(g, fade_in.out(), ckpt.out(1), ckpt.out(2), "a landscape, golden hour", 512, "ipakit_animation",
             batch=8)
    return g


def unified_loader(Graph):
    g = Graph("sd15_unified_loader")
    g.note("## Unified loader (SD1.5)\n\n**IP-Adapter Unified Loader (Kit)** finds the adapter and the CLIP encoder "
           "for a preset by looking inside the files in `models/ipadapter` and `models/clip_vision`: their names "
           "do not matter, and the error says what is missing. Works for SDXL too (connect an SDXL checkpoint).\n")
    ckpt = g.add("CheckpointLoaderSimple", ckpt_name=SD15_CKPT)
    loader = g.add("IPAKitUnifiedLoader", model=ckpt.out(0), preset="PLUS (high strength)")
    ref = g.add("LoadImage", "Reference image", image="reference.png")
    model = g.add("IPAKitApply", model=loader.out(0), ipadapter=loader.out(1), clip_vision=loader.out(2),
                  image=ref.out(), weight=0.8, start_at=0.0, end_at=1.0)
    _sampler(g, model.out(), ckpt.out(1), ckpt.out(2), "a photograph, high quality", 512, "ipakit_unified")
    return g


def embeds_combine(Graph):
    g = Graph("sd15_embeds_combine")
    g.note("## Embeddings: encode, combine, save, apply (SD1.5)\n\nTwo references are encoded once "
           "(**Encode IP-Adapter Embeds (Kit)**), averaged in embedding space (**Combine Embeds (Kit)**), saved as "
           "safetensors for later (**Save Embeds (Kit)**, in the output folder) and applied (**Apply IP-Adapter "
           "Embeds (Kit)**). Changing a weight later never re-encodes.\n\nModel files:\n\n"
           + FILES.format(ckpt=f"`{SD15_CKPT}`", adapters="`ip-adapter-plus_sd15.safetensors`"))
    ckpt = g.add("CheckpointLoaderSimple", ckpt_name=SD15_CKPT)
    clip_vision = g.add("IPAKitClipVisionLoader", clip_name=VIT_H)
    adapter = g.add("IPAKitAdapterLoader", adapter_name="ip-adapter-plus_sd15.safetensors")
    a = g.add("LoadImage", "Reference A", image="reference.png")
    b = g.add("LoadImage", "Reference B", image="reference_b.png")
    enc_a = g.add("IPAKitEncoder", ipadapter=adapter.out(), clip_vision=clip_vision.out(), image=a.out(), weight=1.0)
    enc_b = g.add("IPAKitEncoder", ipadapter=adapter.out(), clip_vision=clip_vision.out(), image=b.out(), weight=1.0)
    both = g.add("IPAKitCombineEmbeds", embed1=enc_a.out(0), method="average", embed2=enc_b.out(0))
    g.add("IPAKitSaveEmbeds", embeds=both.out(), filename_prefix="ipakit_embeds")
    model = g.add("IPAKitApplyEmbeds", model=ckpt.out(0), ipadapter=adapter.out(), pos_embed=both.out(), weight=0.8,
                  weight_type="linear", start_at=0.0, end_at=1.0, embeds_scaling="V only", neg_embed=enc_a.out(1))
    _sampler(g, model.out(), ckpt.out(1), ckpt.out(2), "a photograph, high quality", 512, "ipakit_embeds_combine")
    return g


def saved_embeds(Graph):
    g = Graph("sd15_saved_embeds")
    g.note("## Saved embeddings (SD1.5)\n\n**Load Embeds (Kit)** reads embeddings saved by **Save Embeds (Kit)** "
           "(move them from output/ to input/ to share them); no image and no CLIP encoder are needed for a plain "
           "adapter.\n\nModel files:\n\n- `models/checkpoints/`: `" + SD15_CKPT + "`\n"
           "- `models/ipadapter/`: `ip-adapter_sd15.safetensors`\n")
    ckpt = g.add("CheckpointLoaderSimple", ckpt_name=SD15_CKPT)
    adapter = g.add("IPAKitAdapterLoader", adapter_name="ip-adapter_sd15.safetensors")
    embeds = g.add("IPAKitLoadEmbeds", embeds="my_reference.embeds.safetensors")
    model = g.add("IPAKitApplyEmbeds", model=ckpt.out(0), ipadapter=adapter.out(), pos_embed=embeds.out(), weight=0.8,
                  weight_type="linear", start_at=0.0, end_at=1.0, embeds_scaling="V only")
    _sampler(g, model.out(), ckpt.out(1), ckpt.out(2), "a photograph, high quality", 512, "ipakit_saved_embeds")
    return g


def tiled(Graph):
    g = Graph("sd15_tiled")
    g.note("## Tiled reference (SD1.5)\n\n**Apply IP-Adapter Tiled (Kit)** cuts a reference that is far from square "
           "into 256 px tiles that cover all of it, each under its own mask, so nothing is cropped away; the tiles "
           "and masks come out for inspection.\n\nModel files:\n\n"
           + FILES.format(ckpt=f"`{SD15_CKPT}`", adapters="`ip-adapter-plus_sd15.safetensors`"))
    ckpt, clip_vision = _base(g, SD15_CKPT)
    ref = g.add("LoadImage", "Wide reference", image="panorama.png")
    adapter = g.add("IPAKitAdapterLoader", adapter_name="ip-adapter-plus_sd15.safetensors")
    model = g.add("IPAKitApplyTiled", model=ckpt.out(0), ipadapter=adapter.out(), clip_vision=clip_vision.out(),
                  image=ref.out(), weight=0.8, weight_type="linear", combine_embeds="concat", start_at=0.0, end_at=1.0,
                  sharpening=0.0, embeds_scaling="V only")
    g.add("PreviewImage", "The tiles", images=model.out(1))
    _sampler(g, model.out(0), ckpt.out(1), ckpt.out(2), "a wide landscape", 512, "ipakit_tiled")
    return g


FACEID_FILES = ("- `models/insightface/models/buffalo_l/`: insightface's buffalo_l (`pip install insightface onnxruntime`)\n")


def faceid(Graph):
    g = Graph("sd15_faceid")
    g.note("## FaceID (SD1.5)\n\n**Analyze Faces (Kit)** finds the face in the reference (insightface) and gives its "
           "identity embedding; **Apply FaceID (Kit)** turns it into identity tokens and applies the LoRA inside the "
           "adapter file to the model (strength 1.0, as in the official code).\n\nModel files:\n\n"
           f"- `models/checkpoints/`: `{SD15_CKPT}`\n- `models/ipadapter/`: `ip-adapter-faceid_sd15.bin`\n" + FACEID_FILES)
    ckpt = g.add("CheckpointLoaderSimple", ckpt_name=SD15_CKPT)
    insightface = g.add("IPAKitInsightFaceLoader", model_name="buffalo_l", provider="CPU")
    ref = g.add("LoadImage", "Face reference", image="face.png")
    faces = g.add("IPAKitFaceAnalysis", insightface=insightface.out(), image=ref.out(), face="largest", face_index=0,
                  skip_no_face=False, crop_size=224)
    adapter = g.add("IPAKitAdapterLoader", adapter_name="ip-adapter-faceid_sd15.bin")
    model = g.add("IPAKitApplyFaceID", model=ckpt.out(0), ipadapter=adapter.out(), faces=faces.out(0), weight=0.9,
                  weight_faceidv2=1.8, weight_type="linear", combine_embeds="concat", start_at=0.0, end_at=1.0,
                  embeds_scaling="V only", lora_strength=1.0, plus_version="auto")
    g.add("PreviewImage", "The face that was found", images=faces.out(1))
    _sampler(g, model.out(), ckpt.out(1), ckpt.out(2), "a portrait photograph, studio light", 512, "ipakit_faceid")
    return g


def faceid_plusv2(Graph):
    g = Graph("sd15_faceid_plusv2")
    g.note("## FaceID-PlusV2 with the unified loader (SD1.5)\n\n**IP-Adapter Unified Loader FaceID (Kit)** finds the "
           "FaceID-PlusV2 adapter, its CLIP encoder and buffalo_l by what is inside the files, and applies the "
           "adapter's LoRA. The faces are also saved (**Save Faces (Kit)**) so the workflow can be shared and rerun "
           "without insightface.\n\nModel files:\n\n" + FILES.format(
               ckpt=f"`{SD15_CKPT}`", adapters="`ip-adapter-faceid-plusv2_sd15.bin`") + FACEID_FILES)
    ckpt = g.add("CheckpointLoaderSimple", ckpt_name=SD15_CKPT)
    loader = g.add("IPAKitUnifiedLoaderFaceID", model=ckpt.out(0), preset="FACEID PLUS V2", lora_strength=1.0,
                   lora_source="inside the adapter", provider="CPU")
    ref = g.add("LoadImage", "Face reference", image="face.png")
    faces = g.add("IPAKitFaceAnalysis", insightface=loader.out(3), image=ref.out(), face="largest", face_index=0,
                  skip_no_face=False, crop_size=224)
    g.add("IPAKitSaveFaces", faces=faces.out(0), filename_prefix="ipakit_faces")
    model = g.add("IPAKitApplyFaceID", model=loader.out(0), ipadapter=loader.out(1), faces=faces.out(0), weight=0.9,
                  weight_faceidv2=1.8, weight_type="linear", combine_embeds="concat", start_at=0.0, end_at=1.0,
                  embeds_scaling="V only", lora_strength=1.0, plus_version="auto", clip_vision=loader.out(2))
    _sampler(g, model.out(), ckpt.out(1), ckpt.out(2), "a portrait photograph, studio light", 512,
             "ipakit_faceid_plusv2")
    return g


def faceid_saved(Graph):
    g = Graph("sd15_faceid_saved_faces")
    g.note("## FaceID from saved faces (SD1.5)\n\n**Load Faces (Kit)** reads faces saved by **Save Faces (Kit)**: "
           "no insightface is needed to run this.\n\nModel files:\n\n"
           f"- `models/checkpoints/`: `{SD15_CKPT}`\n- `models/ipadapter/`: `ip-adapter-faceid_sd15.bin`\n")
    ckpt = g.add("CheckpointLoaderSimple", ckpt_name=SD15_CKPT)
    faces = g.add("IPAKitLoadFaces", faces="my_face.faces.safetensors")
    adapter = g.add("IPAKitAdapterLoader", adapter_name="ip-adapter-faceid_sd15.bin")
    model = g.add("IPAKitApplyFaceID", model=ckpt.out(0), ipadapter=adapter.out(), faces=faces.out(0), weight=0.9,
                  weight_faceidv2=1.8, weight_type="linear", combine_embeds="concat", start_at=0.0, end_at=1.0,
                  embeds_scaling="V only", lora_strength=1.0, plus_version="auto")
    _sampler(g, model.out(), ckpt.out(1), ckpt.out(2), "a portrait photograph, studio light", 512, "ipakit_faceid_saved")
    return g


WORKFLOWS = (style_transfer, style_composition, regions, stack_controlnet, animation, unified_loader, embeds_combine,
             saved_embeds, tiled, faceid, faceid_plusv2, faceid_saved)


def object_info():
    import host
    nodes = host.init_builtin_nodes()
    pack = host.load_pack()
    from support import workflow_format as wf
    mappings = {**nodes.NODE_CLASS_MAPPINGS, **pack.NODE_CLASS_MAPPINGS}
    return wf.object_info_from_mappings(mappings, list(mappings))


def build_all():
    from support.workflow_builder import Graph
    return {make.__name__: make(Graph) for make in WORKFLOWS}


def main():
    info = object_info()
    for graph in build_all().values():
        (REPO / "workflows" / f"{graph.name}.json").write_text(json.dumps(graph.ui(info), indent=2) + "\n")
        (REPO / "workflows" / "api" / f"{graph.name}.json").write_text(json.dumps(graph.api(info), indent=2) + "\n")
        print(f"wrote workflows/{graph.name}.json and workflows/api/{graph.name}.json")


if __name__ == "__main__":
    main()
