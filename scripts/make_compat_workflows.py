"""Write the compatibility workflows: ComfyUI_IPAdapter_plus's node ids, in its users' editor format,
covering all 37 (tests/data/compat_workflows/, API twins in api/).

    .cache/host-v0.3.75/venv/bin/python scripts/make_compat_workflows.py
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_workflows import REPO, SD15_CKPT, VIT_H, _sampler, object_info  # noqa: E402

OUT = REPO / "tests" / "data" / "compat_workflows"
COMMON = dict(start_at=0.0, end_at=1.0, embeds_scaling="V only")


def _start(Graph, name):
    g = Graph(name)
    ckpt = g.add("CheckpointLoaderSimple", ckpt_name=SD15_CKPT)
    ref = g.add("LoadImage", "Reference", image="reference.png")
    return g, ckpt, ref


def basics(Graph):
    g, ckpt, ref = _start(Graph, "compat_basics")
    unified = g.add("IPAdapterUnifiedLoader", model=ckpt.out(0), preset="PLUS (high strength)")
    simple = g.add("IPAdapter", model=unified.out(0), ipadapter=unified.out(1), image=ref.out(), weight=0.6,
                   start_at=0.0, end_at=1.0, weight_type="style transfer")
    loader = g.add("IPAdapterModelLoader", ipadapter_file="ip-adapter_sd15.safetensors")
    clip = g.add("CLIPVisionLoader", clip_name=VIT_H)
    prep = g.add("PrepImageForClipVision", image=ref.out(), interpolation="LANCZOS", crop_position="top", sharpening=0.1)
    noise = g.add("IPAdapterNoise", type="fade", strength=0.8, blur=3, image_optional=ref.out())
    advanced = g.add("IPAdapterAdvanced", model=simple.out(), ipadapter=loader.out(), image=prep.out(), weight=0.5,
                     weight_type="ease in", combine_embeds="concat", image_negative=noise.out(), clip_vision=clip.out(),
                     **COMMON)
    ms = g.add("IPAdapterMS", model=advanced.out(), ipadapter=loader.out(), image=ref.out(), weight=0.4,
               weight_faceidv2=1.0, weight_type="linear", combine_embeds="concat", layer_weights="0:1, 6:0.8, 15:1",
               clip_vision=clip.out(), **COMMON)
    tiled = g.add("IPAdapterTiled", model=ms.out(), ipadapter=loader.out(), image=ref.out(), weight=0.4,
                  weight_type="linear", combine_embeds="concat", sharpening=0.0, clip_vision=clip.out(), **COMMON)
    enhanced = g.add("IPAdapterClipVisionEnhancer", model=tiled.out(0), ipadapter=unified.out(1), image=ref.out(),
                     weight=0.4, weight_type="linear", combine_embeds="concat", enhance_tiles=2, enhance_ratio=0.5,
                     **COMMON)
    _sampler(g, enhanced.out(), ckpt.out(1), ckpt.out(2), "a photograph", 512, "compat_basics")
    return g


def batch(Graph):
    g, ckpt, ref = _start(Graph, "compat_batch")
    other = g.add("LoadImage", "Second reference", image="reference_b.png")
    refs = g.add("ImageBatch", image1=ref.out(), image2=other.out())
    weights = g.add("IPAdapterWeights", weights="1.0, 0.0", timing="ease_in_out", frames=2, start_frame=0,
                    end_frame=9999, add_starting_frames=0, add_ending_frames=0, method="shift batches", image=refs.out())
    again = g.add("IPAdapterWeightsFromStrategy", weights_strategy=weights.out(5), image=refs.out())
    combined = g.add("IPAdapterCombineWeights", weights_1=weights.out(0), weights_2=again.out(1))
    loader = g.add("IPAdapterModelLoader", ipadapter_file="ip-adapter_sd15.safetensors")
    clip = g.add("CLIPVisionLoader", clip_name=VIT_H)
    first = g.add("IPAdapterBatch", model=ckpt.out(0), ipadapter=loader.out(), image=weights.out(3),
                  weight=combined.out(0), weight_type="linear", encode_batch_size=1, clip_vision=clip.out(), **COMMON)
    tiled = g.add("IPAdapterTiledBatch", model=first.out(), ipadapter=loader.out(), image=weights.out(4), weight=0.5,
                  weight_type="linear", sharpening=0.0, encode_batch_size=0, clip_vision=clip.out(), **COMMON)
    enhanced = g.add("IPAdapterClipVisionEnhancerBatch", model=tiled.out(0), ipadapter=loader.out(), image=refs.out(),
                     weight=0.5, weight_type="linear", enhance_tiles=2, enhance_ratio=0.5, encode_batch_size=0,
                     clip_vision=clip.out(), **COMMON)
    schedule = g.add("IPAdapterPromptScheduleFromWeightsStrategy", weights_strategy=weights.out(5),
                     prompt="a fox\nthe sea")
    positive = g.add("CLIPTextEncode", "Prompt from the schedule", text=schedule.out(), clip=ckpt.out(1))
    _sampler(g, enhanced.out(), ckpt.out(1), ckpt.out(2), "", 512, "compat_batch", batch=2, positive=positive.out())
    return g


def embeds(Graph):
    g, ckpt, ref = _start(Graph, "compat_embeds")
    other = g.add("LoadImage", "Second reference", image="reference_b.png")
    loader = g.add("IPAdapterModelLoader", ipadapter_file="ip-adapter-plus_sd15.safetensors")
    clip = g.add("CLIPVisionLoader", clip_name=VIT_H)
    enc_a = g.add("IPAdapterEncoder", ipadapter=loader.out(), image=ref.out(), weight=1.0, clip_vision=clip.out())
    enc_b = g.add("IPAdapterEncoder", ipadapter=loader.out(), image=other.out(), weight=1.0, clip_vision=clip.out())
    both = g.add("IPAdapterCombineEmbeds", embed1=enc_a.out(0), method="norm average", embed2=enc_b.out(0))
    g.add("IPAdapterSaveEmbeds", embeds=both.out(), filename_prefix="IP_embeds")
    saved = g.add("IPAdapterLoadEmbeds", embeds="shared.embeds.safetensors")
    first = g.add("IPAdapterEmbeds", model=ckpt.out(0), ipadapter=loader.out(), pos_embed=both.out(), weight=0.7,
                  weight_type="linear", neg_embed=enc_a.out(1), **COMMON)
    second = g.add("IPAdapterEmbedsBatch", model=first.out(), ipadapter=loader.out(), pos_embed=saved.out(), weight=0.5,
                   weight_type="linear", clip_vision=clip.out(), **COMMON)
    _sampler(g, second.out(), ckpt.out(1), ckpt.out(2), "a photograph", 512, "compat_embeds")
    return g


def style(Graph):
    g, ckpt, ref = _start(Graph, "compat_style")
    other = g.add("LoadImage", "Composition reference", image="reference_b.png")
    community = g.add("IPAdapterUnifiedLoaderCommunity", model=ckpt.out(0), preset="Composition")
    p = dict(ipadapter=community.out(1))
    m = g.add("IPAdapterStyleComposition", model=community.out(0), image_style=ref.out(), image_composition=other.out(),
              weight_style=1.0, weight_composition=0.8, expand_style=False, combine_embeds="average", **p, **COMMON)
    m = g.add("IPAdapterStyleCompositionBatch", model=m.out(), image_style=ref.out(), image_composition=other.out(),
              weight_style=0.5, weight_composition=0.5, expand_style=True, **p, **COMMON)
    for node_id, boost in (("IPAdapterPreciseStyleTransfer", "style_boost"),
                           ("IPAdapterPreciseStyleTransferBatch", "style_boost"),
                           ("IPAdapterPreciseComposition", "composition_boost"),
                           ("IPAdapterPreciseCompositionBatch", "composition_boost")):
        m = g.add(node_id, model=m.out(), image=ref.out(), weight=0.4, combine_embeds="concat", **{boost: 0.5}, **p,
                  **COMMON)
    empty = g.add("SolidMask", value=0.0, width=512, height=512)
    half = g.add("SolidMask", value=1.0, width=512, height=256)
    top = g.add("MaskComposite", "Top half", destination=empty.out(), source=half.out(), x=0, y=0, operation="add")
    bottom = g.add("InvertMask", "Bottom half", mask=top.out())
    text_top = g.add("CLIPTextEncode", "Top prompt", text="a blue sky", clip=ckpt.out(1))
    text_bottom = g.add("CLIPTextEncode", "Bottom prompt", text="a green field", clip=ckpt.out(1))
    r1 = g.add("IPAdapterRegionalConditioning", image=ref.out(), image_weight=1.0, prompt_weight=1.0,
               weight_type="linear", start_at=0.0, end_at=1.0, mask=top.out(), positive=text_top.out())
    r2 = g.add("IPAdapterRegionalConditioning", image=other.out(), image_weight=0.8, prompt_weight=1.0,
               weight_type="ease out", start_at=0.0, end_at=1.0, mask=bottom.out(), positive=text_bottom.out())
    params = g.add("IPAdapterCombineParams", params_1=r1.out(0), params_2=r2.out(0))
    m = g.add("IPAdapterFromParams", model=m.out(), ipadapter_params=params.out(), combine_embeds="concat",
              embeds_scaling="V only", **p)
    positive = g.add("ConditioningCombine", conditioning_1=r1.out(1), conditioning_2=r2.out(1))
    _sampler(g, m.out(), ckpt.out(1), ckpt.out(2), "", 512, "compat_style", positive=positive.out())
    return g


def faceid(Graph):
    g, ckpt, ref = _start(Graph, "compat_faceid")
    unified = g.add("IPAdapterUnifiedLoaderFaceID", model=ckpt.out(0), preset="FACEID PLUS V2", lora_strength=0.6,
                    provider="CPU")
    insight = g.add("IPAdapterInsightFaceLoader", provider="CPU", model_name="buffalo_l")
    face = dict(weight_type="linear", combine_embeds="concat", **COMMON)
    first = g.add("IPAdapterFaceID", model=unified.out(0), ipadapter=unified.out(1), image=ref.out(), weight=0.8,
                  weight_faceidv2=1.0, **face)
    second = g.add("IPAAdapterFaceIDBatch", model=first.out(0), ipadapter=unified.out(1), image=ref.out(), weight=0.4,
                   weight_faceidv2=1.0, **face)
    third = g.add("IPAdapterFaceIDKolors", model=second.out(0), ipadapter=unified.out(1), image=ref.out(), weight=0.4,
                  weight_faceidv2=1.0, weight_kolors=1.0, insightface=insight.out(), **face)
    g.add("PreviewImage", "Faces found", images=first.out(1))
    _sampler(g, third.out(0), ckpt.out(1), ckpt.out(2), "a portrait photograph", 512, "compat_faceid")
    return g


WORKFLOWS = (basics, batch, embeds, style, faceid)


def build_all():
    from support.workflow_builder import Graph
    return {make.__name__: make(Graph) for make in WORKFLOWS}


def main():
    info = object_info()
    (OUT / "api").mkdir(parents=True, exist_ok=True)
    for graph in build_all().values():
        (OUT / f"{graph.name}.json").write_text(json.dumps(graph.ui(info), indent=2) + "\n")
        (OUT / "api" / f"{graph.name}.json").write_text(json.dumps(graph.api(info), indent=2) + "\n")
        print(f"wrote {OUT.relative_to(REPO)}/{graph.name}.json and its API twin")


if __name__ == "__main__":
    main()
