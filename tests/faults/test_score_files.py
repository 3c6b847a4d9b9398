"""Faults in score files: a renamed or retyped score column, NaN and +-inf scores, duplicate
uids, a truncated file. Each file has a contract (its scorer's registry entry: the exact columns
and dtypes), checked by every job that reads it."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate.data.integrity import UnreadableFileError
from curate.data.scorefiles import (
    ScoreContractError,
    finite_scores,
    load_chunk_scores,
    load_scores,
    save_scores,
)
from curate.data.subset import load_subset
from curate.workflow.workspace import Workspace
from tests.faults.conftest import FakeSnakemake, Files, run_script
from tests.unit.pool_fixtures import uid

SELECTION = "clip_score_clean_30"


def _chunks(folder, ws, n_chunks=2, per_chunk=10):
    """Score files of tiny-clip-clean, as its rule writes them (its contract)."""
    contract = ws.score_contract("tiny-clip-clean")
    paths = []
    for c in range(n_chunks):
        uids = [uid(c * per_chunk + i) for i in range(per_chunk)]
        frame = pd.DataFrame(
            {"uid": pd.Series(uids, dtype=object), "clip_score": np.linspace(0, 1, per_chunk, dtype=np.float32)}
        )
        paths.append(save_scores(frame, folder / f"{c:05d}.parquet", contract=contract))
    return paths


def _select(config, tmp_path, scores):
    """Run the select_subset rule's script on these score files."""
    ws = Workspace(config)
    out = tmp_path / "subsets" / f"{SELECTION}.npy"
    snakemake = FakeSnakemake(
        config,
        tmp_path / "select.log",
        input=Files(scores=[str(p) for p in scores]),
        output=Files(subset=str(out)),
        params=Files(selection=ws.selection_params(SELECTION), score_contract=ws.selection_score_contract(SELECTION)),
        wildcards=Files(selection=SELECTION, pool="synthetic-tiny"),
    )
    run_script("select_subset.py", snakemake)
    return out


def _rewrite(path, frame: pd.DataFrame, schema: pa.Schema) -> None:
    """Rewrite a score file the way a hand edit or a foreign tool would."""
    pq.write_table(pa.Table.from_pandas(frame, schema=schema, preserve_index=False), path)


def test_scores_as_written_select_a_subset(config, tmp_path):
    scores = _chunks(tmp_path / "scores", Workspace(config))
    assert len(load_subset(_select(config, tmp_path, scores))) == 8  # the top 30 %, ties at the threshold kept


def test_renamed_score_column_stops_the_selection(config, tmp_path):
    """The issue's run: one chunk's clip_score renamed; its rows became NaN after the merge and 636
    uids changed, exit 0. Now the selection stops naming the file and the contract."""
    scores = _chunks(tmp_path / "scores", Workspace(config))
    frame = pd.read_parquet(scores[1]).rename(columns={"clip_score": "clip_scor"})
    _rewrite(scores[1], frame, pa.schema([("uid", pa.string()), ("clip_scor", pa.float32())]))
    with pytest.raises(ScoreContractError) as err:
        _select(config, tmp_path, scores)
    assert str(err.value).startswith(f"score file {scores[1]}: columns [uid: string, clip_scor: float32]")
    assert "contract is exactly [uid: string, clip_score: float32]" in str(err.value)
    assert not (tmp_path / "subsets" / f"{SELECTION}.npy").exists()
    # and a reader without the contract never merges it into NaN rows
    with pytest.raises(ValueError, match=f"score file {scores[1]}: missing score columns"):
        load_chunk_scores(scores, "clip_score")


def test_retyped_or_extra_score_column_stops_the_selection(config, tmp_path):
    scores = _chunks(tmp_path / "scores", Workspace(config))
    frame = pd.read_parquet(scores[0])
    _rewrite(
        scores[0],
        frame.astype({"clip_score": np.float64}),
        pa.schema([("uid", pa.string()), ("clip_score", pa.float64())]),
    )
    with pytest.raises(ScoreContractError, match=r"clip_score: float64\], but its writer's contract"):
        _select(config, tmp_path, scores)
    extra = frame.assign(other=np.float32(1))
    schema = pa.schema([("uid", pa.string()), ("clip_score", pa.float32()), ("other", pa.float32())])
    _rewrite(scores[0], extra, schema)
    with pytest.raises(ScoreContractError, match="other: float32"):
        _select(config, tmp_path, scores)
    # chunks of one scorer with different columns never merge
    with pytest.raises(ScoreContractError, match=f"score file {scores[1]}: columns"):
        load_chunk_scores(scores, "clip_score")


def test_nan_and_inf_scores_are_skipped_and_counted_when_written(tmp_path, caplog):
    values = np.array([0.1, np.nan, np.inf, -np.inf, 0.5], np.float32)
    frame = pd.DataFrame({"uid": pd.Series([uid(i) for i in range(5)], dtype=object), "score": values})
    kept, skipped = finite_scores(frame, ["score"], tmp_path / "00000.parquet")
    assert skipped == {"nan_score": 1, "inf_score": 2} and kept["uid"].tolist() == [uid(0), uid(4)]
    assert "1 rows with a NaN score and 2 with an infinite one are skipped" in caplog.text
    save_scores(kept, tmp_path / "00000.parquet", ["score"])
    assert load_scores(tmp_path / "00000.parquet", ["score"])["score"].tolist() == pytest.approx([0.1, 0.5])


@pytest.mark.parametrize("bad, word", [(np.inf, "+inf"), (-np.inf, "-inf"), (np.nan, "NaN")])
def test_non_finite_score_is_refused_when_read_and_never_enters_a_subset(config, tmp_path, bad, word):
    """The issue's run: a +inf score entered the top 30 %. Now the selection stops naming the file."""
    scores = _chunks(tmp_path / "scores", Workspace(config))
    frame = pd.read_parquet(scores[0])
    frame.loc[3, "clip_score"] = bad
    _rewrite(scores[0], frame, pa.schema([("uid", pa.string()), ("clip_score", pa.float32())]))
    with pytest.raises(ValueError) as err:
        _select(config, tmp_path, scores)
    assert f"score file {scores[0]}: column 'clip_score' has 1 {word}" in str(err.value)
    assert not (tmp_path / "subsets" / f"{SELECTION}.npy").exists()


def test_nan_and_duplicate_uid_are_refused_when_written(tmp_path):
    """What held: a writer handing NaN or a uid twice to save_scores stops naming the file."""
    frame = pd.DataFrame({"uid": pd.Series([uid(0), uid(1)], dtype=object), "clip_score": np.float32([0.2, np.nan])})
    with pytest.raises(ValueError, match=f"score file {tmp_path / 'a.parquet'}: column 'clip_score' has 1 NaN"):
        save_scores(frame, tmp_path / "a.parquet")
    frame = frame.assign(uid=[uid(0), uid(0)], clip_score=np.float32([0.2, 0.3]))
    with pytest.raises(ValueError, match=f"score file {tmp_path / 'b.parquet'}: 1 duplicate uids"):
        save_scores(frame, tmp_path / "b.parquet")


def test_truncated_score_parquet_names_the_file(config, tmp_path):
    """Was: "Could not open Parquet input source '<Buffer>'", no file named."""
    scores = _chunks(tmp_path / "scores", Workspace(config))
    data = scores[1].read_bytes()
    scores[1].write_bytes(data[: len(data) // 2])
    with pytest.raises(UnreadableFileError) as err:
        _select(config, tmp_path, scores)
    assert str(err.value).startswith(f"{scores[1]}: not a readable score parquet (expected columns [uid: string")
    with pytest.raises(UnreadableFileError, match=f"{scores[1]}: not a readable score parquet"):
        load_scores(scores[1])


def test_fusion_checks_each_scorer_file_against_its_own_contract(config, tmp_path):
    """A fusion reads one file per scorer and chunk, each with its scorer's contract (Sieve's holds
    two scores and its best caption): the fusion_stats rule's script checks them all."""
    ws = Workspace(config)
    fusion = "sieve_clip"
    scorers = config["fusions"][fusion]["scorers"]
    files = []
    for c in range(2):
        uids = pd.Series([uid(10 * c + i) for i in range(10)], dtype=object)
        for scorer in scorers:
            contract = ws.score_contract(scorer)
            frame = pd.DataFrame({"uid": uids})
            for column, dtype in contract.items():
                if column != "uid":
                    frame[column] = np.linspace(0, 1, 10, dtype=np.float32) if dtype == "float32" else "a caption"
            files.append(save_scores(frame, tmp_path / scorer / f"{c:05d}.parquet", contract=contract))
    assert list(ws.score_contract(scorers[0])) == ["uid", "sieve_score", "sieve_mean", "best_caption"]

    def fusion_stats():
        out = tmp_path / "stats.json"
        snakemake = FakeSnakemake(
            config,
            tmp_path / "fusion_stats.log",
            input=Files(scores=[str(f) for f in files]),
            output=Files(str(out)),
            params=Files(
                fusion=config["fusions"][fusion],
                columns=ws.fusion_columns(fusion),
                contracts=ws.fusion_contracts(fusion),
            ),
            wildcards=Files(fusion=fusion, pool="synthetic-tiny"),
        )
        run_script("fusion_stats.py", snakemake)
        return out

    assert fusion_stats().is_file()
    sieve = files[2]  # chunk 1's Sieve file, without its best caption
    frame = pd.read_parquet(sieve).drop(columns=["best_caption"])
    _rewrite(
        sieve, frame, pa.schema([("uid", pa.string()), ("sieve_score", pa.float32()), ("sieve_mean", pa.float32())])
    )
    with pytest.raises(ScoreContractError, match=f"score file {sieve}: columns .* best_caption: string"):
        fusion_stats()
