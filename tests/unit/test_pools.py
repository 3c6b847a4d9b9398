"""Real pools' metadata: fetch (stubbed hub), DataComp's columns, made uids, the seeded sample."""

import hashlib

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate.data.download import split_metadata
from curate.data.pools import fetch_metadata, made_uid, prepare_metadata, sample_rows


def write_laion_like(folder, n_files=3, rows=10):
    """LAION-style parquet files: no uid, upper-case columns, some rows without url."""
    folder.mkdir(parents=True, exist_ok=True)
    row = 0
    for f in range(n_files):
        urls = [None if (row + i) % 7 == 3 else f"http://x/{row + i}.jpg" for i in range(rows)]
        pq.write_table(
            pa.table(
                {
                    "URL": urls,
                    "TEXT": [f"caption {row + i}" for i in range(rows)],
                    "WIDTH": list(range(row, row + rows)),
                    "HEIGHT": [5] * rows,
                }
            ),
            folder / f"part-{f:05d}.parquet",
        )
        row += rows


def test_made_uid_is_md5_of_row_and_url():
    assert made_uid(3, "http://a") == hashlib.md5(b"3:http://a").hexdigest()
    assert len(made_uid(0, "u")) == 32


def test_sample_rows_is_seeded_sorted_and_without_replacement():
    a = sample_rows(1000, 100, seed=0)
    assert len(set(a.tolist())) == 100 and np.all(np.diff(a) > 0)
    np.testing.assert_array_equal(a, sample_rows(1000, 100, seed=0))
    assert not np.array_equal(a, sample_rows(1000, 100, seed=1))
    with pytest.raises(ValueError):
        sample_rows(10, 11, seed=0)


def test_prepare_renames_makes_uids_and_drops_rows_without_url(tmp_path):
    write_laion_like(tmp_path / "src")
    columns = {"url": "URL", "text": "TEXT", "original_width": "WIDTH", "original_height": "HEIGHT"}
    summary = prepare_metadata(
        tmp_path / "src", tmp_path / "out.parquet", columns=columns, uid_from="url", batch_size=4
    )
    df = pd.read_parquet(tmp_path / "out.parquet")
    assert list(df.columns) == ["uid", "url", "text", "original_width", "original_height"]
    kept = [r for r in range(30) if r % 7 != 3]
    assert summary["rows"] == len(kept) == len(df) and summary["dropped_without_url"] == 30 - len(kept)
    assert df["uid"].tolist() == [made_uid(r, f"http://x/{r}.jpg") for r in kept]
    assert df["original_width"].tolist() == kept
    # the result is what split_metadata (and so the download rule) takes
    paths = split_metadata(tmp_path / "out.parquet", tmp_path / "chunks", samples_per_shard=4, shards_per_chunk=2)
    assert len(paths) == 4


def test_prepare_draws_the_seeded_sample_in_source_order(tmp_path):
    write_laion_like(tmp_path / "src")
    columns = {"url": "URL", "text": "TEXT"}
    sample = {"n": 12, "seed": 5}
    prepare_metadata(
        tmp_path / "src", tmp_path / "a.parquet", columns=columns, uid_from="url", sample=sample, batch_size=4
    )
    df = pd.read_parquet(tmp_path / "a.parquet")
    rows = [r for r in sample_rows(30, 12, seed=5).tolist() if r % 7 != 3]
    assert df["text"].tolist() == [f"caption {r}" for r in rows]
    prepare_metadata(
        tmp_path / "src", tmp_path / "b.parquet", columns=columns, uid_from="url", sample=sample, batch_size=7
    )
    assert pd.read_parquet(tmp_path / "b.parquet").equals(df)


def test_prepare_names_a_missing_column(tmp_path):
    write_laion_like(tmp_path / "src")
    with pytest.raises(ValueError, match="url"):
        prepare_metadata(tmp_path / "src", tmp_path / "o.parquet", columns={"text": "TEXT"}, uid_from="url")


def test_fetch_metadata_records_the_snapshot(tmp_path):
    calls = []

    def snapshot_download(repo_id, repo_type, revision, allow_patterns, local_dir):
        calls.append((repo_id, repo_type, revision, allow_patterns))
        write_laion_like(tmp_path / local_dir, n_files=2, rows=5)

    record = fetch_metadata("mlfoundations/datacomp_small", tmp_path / "meta", snapshot_download=snapshot_download)
    assert calls == [("mlfoundations/datacomp_small", "dataset", None, ["*.parquet"])]
    assert record["n_rows"] == 10 and len(record["files"]) == 2
    assert (tmp_path / "meta" / "fetch.json").is_file()
