"""Image embeddings of pool chunks by a transformers vision backbone (DINOv2, Density-Based
Pruning's encoder; docs/algorithms.md §11).

A folder holding a model ``AutoModel`` loads (``Dinov2Model``: facebook/dinov2-large's Hub
snapshot, or a tiny one in the same layout) and the image processor saved beside it
(``AutoImageProcessor``: DINOv2's resize 256, centre crop 224, ImageNet normalisation). A sample's
embedding is the model's ``pooler_output`` (DINOv2: the final layer-normed [CLS] token),
L2-normalised. Bad samples are skipped and counted as every scorer's reader does.
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)


def load_image_encoder(folder, device: str = "cpu"):
    """``(model, processor)`` of a transformers vision backbone folder (``from_pretrained``)."""
    from transformers import AutoImageProcessor, AutoModel

    model = AutoModel.from_pretrained(str(folder)).to(device).eval()
    processor = AutoImageProcessor.from_pretrained(str(folder))
    return model, processor


def encode_images(model, processor, images, device: str = "cpu") -> np.ndarray:
    """L2-normalised ``pooler_output`` of a list of PIL images, float32 ``(n, d)``."""
    import torch

    with torch.no_grad():
        pixels = processor(images=[im.convert("RGB") for im in images], return_tensors="pt")["pixel_values"]
        pooled = model(pixel_values=pixels.to(device)).pooler_output.float()
        pooled = torch.nn.functional.normalize(pooled, dim=-1)
    return pooled.cpu().numpy().astype(np.float32)


def embed_chunk(folder, shard_paths: list, batch_size: int = 64, device: str = "cpu") -> tuple[list, np.ndarray, dict]:
    """``(uids, embeddings, report)`` of every kept sample of a chunk's shards, in reading order."""
    from curate.data.shards import SkipReport, iter_pool_batches

    model, processor = load_image_encoder(folder, device)
    report = SkipReport()
    uids: list[str] = []
    out: list[np.ndarray] = []
    for batch in iter_pool_batches(shard_paths, report, batch_size, desc="image embeddings"):
        out.append(encode_images(model, processor, [s.image for s in batch], device))
        uids.extend(s.uid for s in batch)
    dim = int(getattr(model.config, "hidden_size", 0))
    embeddings = np.concatenate(out) if out else np.zeros((0, dim), np.float32)
    result = report.as_dict() | {"model": str(folder)}
    return uids, embeddings, result
