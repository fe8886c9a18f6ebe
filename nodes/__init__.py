"""ComfyUI nodes of IPAdapter Kit: thin wrappers over `patching`."""
from .apply import IPAKitApply, IPAKitApplyAdvanced, IPAKitApplyBatch
from .embeds import (IPAKitApplyEmbeds, IPAKitCombineEmbeds, IPAKitEncoder, IPAKitLoadEmbeds, IPAKitNoise,
                     IPAKitSaveEmbeds)
from .encoders import IPAKitClipVisionLoader, IPAKitPrepImage, IPAKitUnifiedLoader
from .faceid import (IPAKitApplyFaceID, IPAKitFaceAnalysis, IPAKitInsightFaceLoader, IPAKitLoadFaces, IPAKitSaveFaces,
                     IPAKitUnifiedLoaderFaceID)
from .folders import register as register_folders
from .frame_weights import IPAKitFrameWeights, IPAKitFrameWeightsFromStrategy, IPAKitPromptSchedule
from .loader import IPAKitAdapterLoader
from .precise import IPAKitPreciseComposition, IPAKitPreciseStyleTransfer
from .regions import IPAKitApplyRegions, IPAKitCombineRegions, IPAKitRegion
from .style_composition import IPAKitStyleComposition
from .tiled import IPAKitApplyEnhanced, IPAKitApplyTiled

register_folders()

_NODES = {
    "IPAKitAdapterLoader": (IPAKitAdapterLoader, "Load IP-Adapter (Kit)"),
    "IPAKitUnifiedLoader": (IPAKitUnifiedLoader, "IP-Adapter Unified Loader (Kit)"),
    "IPAKitClipVisionLoader": (IPAKitClipVisionLoader, "Load CLIP Vision, any layout (Kit)"),
    "IPAKitPrepImage": (IPAKitPrepImage, "Prep Image For CLIP Vision (Kit)"),
    "IPAKitApply": (IPAKitApply, "Apply IP-Adapter (Kit)"),
    "IPAKitApplyAdvanced": (IPAKitApplyAdvanced, "Apply IP-Adapter Advanced (Kit)"),
    "IPAKitApplyBatch": (IPAKitApplyBatch, "Apply IP-Adapter Batch (Kit)"),
    "IPAKitApplyTiled": (IPAKitApplyTiled, "Apply IP-Adapter Tiled (Kit)"),
    "IPAKitApplyEnhanced": (IPAKitApplyEnhanced, "Apply IP-Adapter Enhanced (Kit)"),
    "IPAKitEncoder": (IPAKitEncoder, "Encode IP-Adapter Embeds (Kit)"),
    "IPAKitApplyEmbeds": (IPAKitApplyEmbeds, "Apply IP-Adapter Embeds (Kit)"),
    "IPAKitCombineEmbeds": (IPAKitCombineEmbeds, "Combine Embeds (Kit)"),
    "IPAKitSaveEmbeds": (IPAKitSaveEmbeds, "Save Embeds (Kit)"),
    "IPAKitLoadEmbeds": (IPAKitLoadEmbeds, "Load Embeds (Kit)"),
    "IPAKitNoise": (IPAKitNoise, "IP-Adapter Noise (Kit)"),
    "IPAKitStyleComposition": (IPAKitStyleComposition, "Style & Composition (Kit)"),
    "IPAKitUnifiedLoaderFaceID": (IPAKitUnifiedLoaderFaceID, "IP-Adapter Unified Loader FaceID (Kit)"),
    "IPAKitInsightFaceLoader": (IPAKitInsightFaceLoader, "Load InsightFace (Kit)"),
    "IPAKitFaceAnalysis": (IPAKitFaceAnalysis, "Analyze Faces (Kit)"),
    "IPAKitApplyFaceID": (IPAKitApplyFaceID, "Apply FaceID (Kit)"),
    "IPAKitSaveFaces": (IPAKitSaveFaces, "Save Faces (Kit)"),
    "IPAKitLoadFaces": (IPAKitLoadFaces, "Load Faces (Kit)"),
    "IPAKitPreciseStyleTransfer": (IPAKitPreciseStyleTransfer, "Precise Style Transfer (Kit)"),
    "IPAKitPreciseComposition": (IPAKitPreciseComposition, "Precise Composition (Kit)"),
    "IPAKitRegion": (IPAKitRegion, "IP-Adapter Region (Kit)"),
    "IPAKitCombineRegions": (IPAKitCombineRegions, "Combine Regions (Kit)"),
    "IPAKitApplyRegions": (IPAKitApplyRegions, "Apply IP-Adapter Regions (Kit)"),
    "IPAKitFrameWeights": (IPAKitFrameWeights, "Frame Weights (Kit)"),
    "IPAKitFrameWeightsFromStrategy": (IPAKitFrameWeightsFromStrategy, "Frame Weights From Strategy (Kit)"),
    "IPAKitPromptSchedule": (IPAKitPromptSchedule, "Prompt Schedule From Frame Weights (Kit)"),
}
NODE_CLASS_MAPPINGS = {node_id: cls for node_id, (cls, _) in _NODES.items()}
NODE_DISPLAY_NAME_MAPPINGS = {node_id: name for node_id, (_, name) in _NODES.items()}
