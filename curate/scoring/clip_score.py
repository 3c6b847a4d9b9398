"""CLIP score of pool samples: cosine of the L2-normalised image and text embeddings.

One chunk of pool shards at a time, every CLIP scorer of a group in one pass
(`score_chunk_group`: each image decoded once, each model's own preprocessing; `score_chunk` is
a group of one); bad samples are skipped and counted as `curate.data.shards.iter_pool_samples`
counts them, a NaN score is skipped and counted here. Score files are
parquet with a ``uid`` column (32 hex characters, unique) and float32 score columns without NaN;
`save_scores` / `load_scores` check that and fail naming the file.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from curate.data.scorefiles import save_embeddings

log = logging.getLogger(__name__)


class ClipPassModel:
    """An open_clip model in a pass (`curate.scoring.one_pass`): its own image preprocessing and
    tokenizer (in the loader's workers), L2-normalised image and text embeddings in fp32 and their
    cosine, as `curate.scoring.clip.encode` computes them."""

    def __init__(self, name: str, model, preprocess, tokenizer):
        from curate.data.loader import PoolInputs
        from curate.scoring.one_pass import transform_key

        self.name, self.model = name, model
        self.image_key = transform_key("image", preprocess)
        self.text_key = transform_key("text", tokenizer)
        self.inputs = PoolInputs(images={self.image_key: preprocess}, texts={self.text_key: _Tokenize(tokenizer)})

    def run(self, batch) -> dict:
        import torch

        images, tokens = batch.images[self.image_key], batch.text_inputs[self.text_key]
        device = next(self.model.parameters()).device
        img = self.model.encode_image(images.to(device, non_blocking=True))
        txt = self.model.encode_text(tokens.to(device, non_blocking=True))
        img = torch.nn.functional.normalize(img.float(), dim=-1).cpu().numpy().astype(np.float32, copy=False)
        txt = torch.nn.functional.normalize(txt.float(), dim=-1).cpu().numpy().astype(np.float32, copy=False)
        return {"score": np.einsum("ij,ij->i", img, txt).astype(np.float32), "image": img, "text": txt}


class _Tokenize:
    """An open_clip tokenizer over a list of captions (picklable, for the loader's workers)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def __call__(self, texts):
        return self.tokenizer(list(texts))


def score_chunk_group(
    models: dict,
    shard_paths: list,
    batch_size: int = 256,
    device: str = "cpu",
    embeddings_paths: dict | None = None,
    workers: int = 0,
    precision: str = "bf16",
) -> dict:
    """CLIP-score every kept sample of the pool shards `shard_paths` with every model of `models`
    (scorer name -> model source, or ``(source, pretrained)``: `curate.scoring.clip.load_model`)
    in ONE pass: each image
    decoded once, then each model's own preprocessing (`curate.scoring.one_pass`), ``workers``
    loader processes, on ``device`` (autocast to ``precision`` on CUDA, fp32 on the CPU).

    Returns scorer name -> ``(DataFrame[uid: str, clip_score: float32], report)``, each as
    `score_chunk` returns it; with ``embeddings_paths`` (scorer name -> path), each scorer's
    L2-normalised image and text embeddings of its scored rows are saved there too.
    """
    from curate.devices import inference_autocast
    from curate.scoring.clip import _embed_dim, load_model
    from curate.scoring.one_pass import run_pass

    passes = []
    for name, spec in models.items():
        source, pretrained = spec if isinstance(spec, tuple) else (spec, None)
        model, preprocess, tokenizer = load_model(source, device=device, pretrained=pretrained)
        passes.append(ClipPassModel(name, model, preprocess, tokenizer))
    uids, _, outputs, report = run_pass(
        passes,
        shard_paths,
        batch_size,
        workers=workers,
        device=device,
        autocast=lambda: inference_autocast(device, precision),
        desc=f"clip score ({len(passes)} models)",
    )
    results = {}
    for scorer in passes:
        dim = _embed_dim(scorer.model)
        out = outputs[scorer.name]
        values = out.get("score", np.zeros(0, np.float32))
        img = out.get("image", np.zeros((0, dim), np.float32))
        txt = out.get("text", np.zeros((0, dim), np.float32))
        df = pd.DataFrame({"uid": pd.Series(uids, dtype=object), "clip_score": values})
        nan = np.isnan(values)
        result = report.as_dict()
        result["skipped"]["nan_score"] = int(nan.sum())
        if nan.any():
            log.warning(
                "%s: %d samples got a NaN CLIP score and are dropped (e.g. uid %s)",
                scorer.name,
                int(nan.sum()),
                df.uid[nan].iloc[0],
            )
            df = df[~nan].reset_index(drop=True)
            result["kept"] = int(len(df))
        spec = models[scorer.name]
        result["model"] = str(spec[0] if isinstance(spec, tuple) else spec)
        if embeddings_paths is not None and scorer.name in embeddings_paths:
            save_embeddings(embeddings_paths[scorer.name], df["uid"].tolist(), img[~nan], txt[~nan])
        results[scorer.name] = (df, result)
    return results


def score_chunk(
    model_source: str,
    shard_paths: list,
    batch_size: int = 256,
    device: str = "cpu",
    pretrained: str | None = None,
    embeddings_path=None,
    workers: int = 0,
    precision: str = "bf16",
) -> tuple[pd.DataFrame, dict]:
    """CLIP-score every kept sample of the pool shards `shard_paths` with the model
    `model_source` (see `curate.scoring.clip.load_model`): `score_chunk_group` with one model.

    Returns ``(DataFrame[uid: str, clip_score: float32], report)``: one row per kept sample in
    reading order; `report` is the `SkipReport` as a dict, plus ``skipped.nan_score`` (samples
    whose score came out NaN, dropped) and ``model``. With ``embeddings_path``, the L2-normalised
    image and text embeddings of the scored rows are saved there too (`save_embeddings`), the
    input of the embedding-based scores (s-CLIPLoss, NormSim, the image-based baseline).
    """
    paths = {"model": embeddings_path} if embeddings_path is not None else None
    return score_chunk_group(
        {"model": (model_source, pretrained)},
        shard_paths,
        batch_size,
        device,
        paths,
        workers=workers,
        precision=precision,
    )["model"]
