"""A fusion over a pool's chunk files: pool statistics in one pass (or two), then each chunk
fused alone from them (docs/algorithms.md §5, §6; the methods are `curate.selection.fusion.FUSIONS`).

Each scorer's files hold its score under its own column (`curate.scoring.kinds.score_column`:
``clip_score``, ``sieve_score``, ...), so the callers pass one column per scorer. Fused chunk files
hold ``uid`` and :data:`FUSED_COLUMN`.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from curate.data.scorefiles import load_embeddings, load_scores
from curate.selection.fusion import COLUMN_STATS, FUSIONS, column_stats

log = logging.getLogger(__name__)

FUSED_COLUMN = "score"


def load_score_matrix(paths: list, columns: list[str]) -> tuple[list[str], np.ndarray]:
    """One chunk's scores of several scorers (one file per scorer, in order, ``columns`` naming
    each file's score column) as ``(uids, N x M)``.

    Rows are the uids every scorer scored (inner join), in the first file's order; a uid one
    scorer skipped (a NaN score, say) is left out of the fusion and logged.
    """
    if not paths:
        raise ValueError("load_score_matrix: no score files")
    if len(columns) != len(paths):
        raise ValueError(f"{len(paths)} score files but {len(columns)} score columns")
    frames = [load_scores(path, [column]) for path, column in zip(paths, columns)]
    joined = frames[0][["uid", columns[0]]].rename(columns={columns[0]: 0})
    for j, (frame, column) in enumerate(zip(frames[1:], columns[1:]), 1):
        joined = joined.merge(frame[["uid", column]].rename(columns={column: j}), on="uid", how="inner", sort=False)
    dropped = max(len(f) for f in frames) - len(joined)
    if dropped:
        log.warning("%d uids of %s are not scored by every scorer and are left out of the fusion", dropped, paths[0])
    S = joined[list(range(len(frames)))].to_numpy(np.float64)
    return joined["uid"].tolist(), S


def split_chunk_files(files: list, n_scorers: int) -> list[list]:
    """A fusion's flat chunk-major list of score files (for each chunk, one file per scorer) back
    as one list of ``n_scorers`` files per chunk."""
    files = list(files)
    if n_scorers < 1 or len(files) % n_scorers:
        raise ValueError(f"{len(files)} score files are not whole chunks of {n_scorers} scorers")
    return [files[i : i + n_scorers] for i in range(0, len(files), n_scorers)]


def fusion_statistics(chunk_files: list[list], fusion: dict, columns: list[str], inputs: dict | None = None) -> dict:
    """Pool-wide statistics of a fusion (JSON-ready) from ``chunk_files`` = per chunk, one score
    file per scorer (in the fusion's scorer order), ``columns`` = each scorer's score column, and
    the method's own ``inputs`` (an IN-weighted sum's evaluation records, say).

    Holds the columns' ``min, max, mean, std (ddof=1), n`` and what the method's ``statistics`` adds
    (MoS: the row-std range of the normalised scores, a second pass; IN-weighted: its weights).
    """
    method = FUSIONS.of(fusion, "fusion")

    def matrices():
        return (load_score_matrix(files, columns)[1] for files in chunk_files)

    stats = column_stats(matrices())
    out = {"method": method.name, "scorers": list(fusion["scorers"])}
    out.update({key: np.atleast_1d(stats[key]).tolist() for key in COLUMN_STATS})
    statistics = method.spec.get("statistics")
    if statistics is not None:
        out.update(statistics(matrices, out, fusion, inputs or {}))
    return out


def fuse_matrix(S: np.ndarray, fusion: dict, stats: dict) -> np.ndarray:
    """The fused score of each row of ``S`` (N x M, columns in the fusion's scorer order) from the
    pool statistics; each row depends only on itself."""
    S = np.asarray(S, dtype=np.float64)
    if S.ndim != 2 or S.shape[1] != len(stats["min"]):
        raise ValueError(f"score matrix of shape {S.shape} for a fusion of {len(stats['min'])} scorers")
    return FUSIONS.of(fusion, "fusion").run(S, stats, fusion)


def head_inputs(
    fusion: dict,
    stats: dict | None,
    chunk_files: list[list] | None = None,
    columns: list[str] | None = None,
    embedding_files: list | None = None,
) -> tuple[list[str], np.ndarray]:
    """``(uids, X)``: the inputs of a trained fusion's head over some chunks: the scores (M-FLYT:
    standardised over the pool, or raw with ``standardise: false``) or the L2-normalised image and
    text embeddings (E-FLYT)."""
    method = FUSIONS.of(fusion, "fusion")
    uids, rows = [], []
    if method.head_input == "embeddings":
        from curate.selection.flyt import eflyt_features

        for path in embedding_files:
            chunk_uids, image, text = load_embeddings(path)
            uids += chunk_uids
            rows.append(eflyt_features(image, text).numpy())
        return uids, np.concatenate(rows) if rows else np.zeros((0, 0), np.float32)
    for files in chunk_files:
        chunk_uids, S = load_score_matrix(files, columns)
        uids += chunk_uids
        rows.append(method.run(S, stats, fusion))
    return uids, np.concatenate(rows) if rows else np.zeros((0, len(columns or [])))


def embed_chunk_features(shards, extractor, batch_size: int = 256) -> tuple[list[str], np.ndarray]:
    """``(uids, X)``: E-FLYT's head inputs of one chunk computed from its shards by ``extractor``
    (``(model, preprocess, tokenizer)``, the feature extractor trained with the head): the
    samples' L2-normalised image and text embeddings, bad samples skipped as the scorers skip them."""
    from curate.data.shards import SkipReport, iter_pool_batches, shard_paths
    from curate.scoring.clip import encode
    from curate.selection.flyt import eflyt_features

    model, preprocess, tokenizer = extractor
    uids, rows = [], []
    for batch in iter_pool_batches(shard_paths(shards), SkipReport(), batch_size):
        image, text = encode(model, preprocess, tokenizer, [s.image for s in batch], [s.text for s in batch])
        uids += [s.uid for s in batch]
        rows.append(eflyt_features(image, text).numpy())
    return uids, np.concatenate(rows) if rows else np.zeros((0, 0), np.float32)


def fuse_chunk(
    fusion: dict,
    stats: dict,
    score_files: list,
    columns: list[str],
    head=None,
    embeddings=None,
    shards=None,
    extractor=None,
) -> pd.DataFrame:
    """One chunk's fused scores, ``DataFrame[uid, score (float32)]``: the method's fusion of its
    score matrix, or a trained method's ``head`` applied to its inputs (E-FLYT's: the chunk's
    stored embeddings, or with a feature extractor trained with the head, its ``shards`` embedded
    by that ``extractor``)."""
    method = FUSIONS.of(fusion, "fusion")
    if method.spec.get("head"):
        if head is None:
            raise ValueError(f"fusion method {method.name!r} needs its trained head")
        from curate.selection.flyt import apply_mixer

        if extractor is not None:
            uids, X = embed_chunk_features(shards, extractor)
        else:
            uids, X = head_inputs(fusion, stats, [score_files], columns, [embeddings])
        fused = apply_mixer(head, X).astype(np.float64)
    else:
        uids, S = load_score_matrix(score_files, columns)
        fused = fuse_matrix(S, fusion, stats)
    if np.isnan(fused).any():
        raise ValueError(f"fusion {method.name} gave NaN scores for chunk {score_files[0]}")
    return pd.DataFrame({"uid": pd.Series(uids, dtype=object), FUSED_COLUMN: fused.astype(np.float32)})
