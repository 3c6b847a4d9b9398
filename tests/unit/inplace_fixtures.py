"""An existing DataComp download, made by hand as DataComp's download_upstream.py leaves it: the
metadata (parquet + row-aligned npz) in root/metadata/ and img2dataset's shards in a flat
root/shards/, each metadata file cut into shards of its own (img2dataset's reader)."""

import hashlib
import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from curate.data.shards import ShardWriter

SCHEMA = pa.schema(
    [
        ("uid", pa.string()),
        ("url", pa.string()),
        ("text", pa.string()),
        ("original_width", pa.int64()),
        ("original_height", pa.int64()),
        ("clip_b32_similarity_score", pa.float32()),
        ("clip_l14_similarity_score", pa.float32()),
        ("face_bboxes", pa.list_(pa.list_(pa.float64()))),
        ("sha256", pa.string()),
    ]
)
WIDTHS = {"b32": 8, "l14": 12}


def uid_of(row: int) -> str:
    return hashlib.md5(f"datacomp-row-{row}".encode()).hexdigest()


def image_of(row: int) -> bytes:
    rng = np.random.default_rng(row)
    buffer = io.BytesIO()
    Image.new("RGB", (24 + row % 5, 24), tuple(int(c) for c in rng.integers(0, 255, 3))).save(buffer, "JPEG")
    return buffer.getvalue()


def _unit(rng, n, d):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def write_datacomp_download(root, file_rows=(50, 35), samples_per_shard=20, failed=(3, 10, 17, 24, 61), url=None):
    """DataComp's download layout under ``root``; rows in ``failed`` (global row numbers) failed to
    download. ``url(row)``: each row's url (default ``http://example.invalid/<row>.jpg``). Returns
    what was written: ``uids`` (by global row), ``scores`` ({column: array}), ``features``
    ({"b32_img": array, ...}), ``n_shards``, ``shard_rows`` (shard id -> global rows)."""
    url = url or (lambda row: f"http://example.invalid/{row}.jpg")
    rng = np.random.default_rng(0)
    (root / "metadata").mkdir(parents=True)
    (root / "shards").mkdir(parents=True)
    out = {"uids": [], "scores": {}, "features": {}, "shard_rows": {}}
    row = shard = 0
    for index, n in enumerate(file_rows):
        rows = list(range(row, row + n))
        features = {}
        for name, width in WIDTHS.items():
            features[f"{name}_img"], features[f"{name}_txt"] = _unit(rng, n, width), _unit(rng, n, width)
        table = {
            "uid": [uid_of(r) for r in rows],
            "url": [url(r) for r in rows],
            "text": [f"a caption of row {r}" for r in rows],
            "original_width": [24 + r % 5 for r in rows],
            "original_height": [24] * n,
            "clip_b32_similarity_score": (features["b32_img"] * features["b32_txt"]).sum(1),
            "clip_l14_similarity_score": (features["l14_img"] * features["l14_txt"]).sum(1),
            "face_bboxes": [[] for _ in rows],
            "sha256": [hashlib.sha256(image_of(r)).hexdigest() for r in rows],
        }
        stem = f"{index:02d}{'ab' * 15}"  # DataComp names its files by 32 hex digits
        pq.write_table(pa.table(table, schema=SCHEMA), root / "metadata" / f"{stem}.parquet", row_group_size=16)
        np.savez(root / "metadata" / f"{stem}.npz", **{k: v.astype(np.float16) for k, v in features.items()})
        out["uids"] += table["uid"]
        for column in ("clip_b32_similarity_score", "clip_l14_similarity_score"):
            out["scores"].setdefault(column, []).extend(table[column].tolist())
        for key, value in features.items():
            out["features"].setdefault(key, []).append(value.astype(np.float16))
        for start in range(0, n, samples_per_shard):  # img2dataset cuts each file on its own
            members = rows[start : start + samples_per_shard]
            with ShardWriter(root / "shards", shard, samples_per_shard) as writer:
                for r in members:
                    meta = {"uid": uid_of(r), "url": url(r)}
                    if r in failed:
                        writer.write(
                            None, f"a caption of row {r}", meta | {"error_message": "HTTP Error 404: Not Found"}
                        )
                    else:
                        writer.write(image_of(r), f"a caption of row {r}", meta)
            out["shard_rows"][shard] = members
            shard += 1
        row += n
    out["n_shards"] = shard
    out["features"] = {k: np.concatenate(v) for k, v in out["features"].items()}
    out["scores"] = {k: np.asarray(v, np.float32) for k, v in out["scores"].items()}
    return out
