"""The paths module (one template per artefact) and the Workspace's input functions."""

import re

import pytest

from curate.data.chunks import chunk_folder, chunk_name, chunk_names, chunk_shard_ids, n_chunks
from curate.data.shards import shard_paths
from curate.selection.methods import SELECTIONS
from curate.workflow.paths import TEMPLATES, Paths, fields, template
from curate.workflow.tables import table_selections
from curate.workflow.workspace import Workspace, names_pattern


def test_chunks_cover_every_shard_once():
    n_shards, per_chunk = 11, 4
    names = chunk_names(n_shards, per_chunk)
    assert names == ["00000", "00001", "00002"]
    ids = [i for name in names for i in chunk_shard_ids(name, n_shards, per_chunk)]
    assert ids == list(range(11))
    assert chunk_shard_ids("00002", n_shards, per_chunk) == [8, 9, 10]


def test_chunk_counts():
    assert n_chunks(1_280_000, 500) == 2560
    assert n_chunks(8, 2) == 4
    assert chunk_name(7) == "00007"


@pytest.mark.parametrize("chunk", ["00003", "-0001"])
def test_chunk_outside_the_pool_is_refused(chunk):
    with pytest.raises(ValueError, match="outside"):
        chunk_shard_ids(chunk, 8, 3)


def test_a_template_fills_what_it_is_given_and_keeps_the_rest_as_wildcards():
    paths = Paths("d")
    assert paths("scores") == "d/scores/{pool}/{scorer}/{chunk}.parquet"
    assert paths("scores", pool="p", chunk="00001") == "d/scores/p/{scorer}/00001.parquet"
    assert paths("evaluation", pool="p", selection="s", recipe="r", suite="u") == "d/evals/p/s/r/u.jsonl"
    assert paths("table", table="table1") == "results/table1.csv"
    assert paths.log("score_chunk", "pool", "scorer", "chunk") == "d/logs/score_chunk/{pool}/{scorer}/{chunk}.log"
    assert fields("model") == ["pool", "selection", "recipe"]
    with pytest.raises(KeyError, match="no path template 'nope'"):
        paths("nope")
    with pytest.raises(KeyError, match="has no field 'scorer'"):
        template("subset", "d", scorer="x")


def test_every_template_lives_under_data_or_results():
    for name, text in TEMPLATES.items():
        assert text.startswith(("{data}/", "{results}/")), name


def test_chunk_input_is_the_folder_or_the_download_report(config, tmp_path):
    ws = Workspace(config)
    synthetic = ws.chunk_input("synthetic-tiny", "00003")
    assert synthetic == "data/pools/synthetic-tiny/shards/00003"
    real = ws.chunk_input("datacomp-small", "00003")
    assert real == "data/pools/datacomp-small/shards/00003.download.json"
    assert str(chunk_folder(real)) == "data/pools/datacomp-small/shards/00003"
    assert str(chunk_folder(synthetic)) == synthetic
    (tmp_path / "00003").mkdir()
    for name in ("00000031.tar", "00000030.tar", "00000030.parquet"):
        (tmp_path / "00003" / name).write_bytes(b"")
    expected = [tmp_path / "00003" / "00000030.tar", tmp_path / "00003" / "00000031.tar"]
    assert shard_paths(tmp_path / "00003.download.json") == expected == shard_paths(tmp_path / "00003")


def test_table_selections_per_scale():
    config = {
        "scale": "tiny",
        "tables": {"table1": {"selections": ["a", "oracle"]}},
        "scales": {"tiny": {}, "small": {"tables": {"table1": ["a", "b"]}}},
    }
    assert table_selections(config, "table1") == ["a", "oracle"]
    assert table_selections(config, "table1", "small") == ["a", "b"]


def test_names_pattern_matches_exactly_the_names():
    pattern = names_pattern(["a.b", "c"])
    assert re.fullmatch(pattern, "a.b") and re.fullmatch(pattern, "c") and not re.fullmatch(pattern, "axb")
    assert not re.fullmatch(names_pattern([]), "")


def _paths_of(value):
    if isinstance(value, dict):
        return [p for v in value.values() for p in _paths_of(v)]
    if isinstance(value, (list, tuple)):
        return [p for v in value for p in _paths_of(v)]
    return [str(value)]


def _every_input(ws: Workspace, pool: str) -> list[str]:
    """Every file any rule's input function asks for on ``pool``: every scorer of every kind on
    every chunk, every fusion (statistics, chunks, trained heads), every selection (subset,
    reshard, sample weights, captions), the caption files."""
    config, chunks = ws.config, ws.chunks(pool)
    inputs = []
    for chunk in chunks[:2] + chunks[-1:]:
        for scorer in config["scorers"]:
            inputs += _paths_of(ws.scorer_inputs(scorer, pool, chunk))
        for fusion in config["fusions"]:
            if all(s in config["scorers"] for s in config["fusions"][fusion]["scorers"]):
                inputs += _paths_of(ws.fuse_chunk_inputs(pool, fusion, chunk))
    for fusion, entry in config["fusions"].items():
        if all(s in config["scorers"] for s in entry["scorers"]):
            inputs += _paths_of(ws.fusion_stats_inputs(pool, fusion))
            if entry["method"] in ("mflyt", "eflyt"):
                inputs += _paths_of(ws.mixer_inputs(pool, fusion))
    for scorer, entry in config["scorers"].items():
        if entry["library"] == "embedding" and entry["method"].endswith("classifier"):
            inputs += _paths_of(ws.classifier_inputs(scorer, pool))
    for selection, entry in config["selections"].items():
        if SELECTIONS.of(entry).spec.get("needs_ground_truth"):
            continue  # the oracle, noise_mix: refused on a real pool (test_config)
        if entry["method"] == "uids_file" and entry["path"] is None:
            if SELECTIONS.of(entry).unavailable(config, entry, pool):
                continue  # published uids not configured (or not for this pool): the row says so
        references = [entry.get("scorer")] + config["fusions"].get(entry.get("fusion"), {}).get("scorers", [])
        if any(s is not None and s not in config["scorers"] for s in references):
            continue  # a paper scorer nothing stands in for: not built
        inputs += _paths_of(ws.selection_inputs(pool, selection)) + _paths_of(ws.reshard_inputs(pool, selection))
        if entry["method"] == "recaption" and entry["captioner"] in config.get("captioners", {}):
            inputs += _paths_of(ws.recaption_captions(pool, selection))
    return inputs


@pytest.mark.parametrize(
    "pool", ["datacomp-small", "datacomp-medium", "datacomp-large", "datacomp-xlarge", "cc3m", "laion100m"]
)
def test_no_input_on_a_real_pool_is_made_by_a_synthesize_rule(config, pool):
    """A real pool's chunks are read through their download reports: no input function names a
    file that synthesize_pool_chunk (shard folders, ground truth) would make for it."""
    ws = Workspace(config)
    assert config["pools"][pool]["source"] != "synthetic"
    synthesized = [
        re.escape(ws.path(name, pool=pool)).replace(r"\{chunk\}", r"\d+") for name in ("pool_chunk", "ground_truth")
    ]
    inputs = _every_input(ws, pool)
    assert inputs and any(p.endswith(".download.json") for p in inputs)
    made = [p for p in inputs if any(re.fullmatch(pattern, p) for pattern in synthesized)]
    assert not made, made[:5]


def test_a_download_read_in_place_is_read_through_its_chunk_indexes():
    """A pool with `layout` and `root`: every input names the chunk's index (links into root),
    never a download report or a synthesized shard folder; DataComp's OpenAI scores and
    embeddings come from the metadata scorers."""
    from curate.workflow.config import load_config

    in_place = {"layout": "datacomp", "root": "/data/datacomp_small"}
    ws = Workspace(load_config(overrides={"scale": "small", "pools": {"datacomp-small": in_place}}))
    inputs = _every_input(ws, "datacomp-small")
    assert any(p.endswith(".index.json") for p in inputs)
    assert not [p for p in inputs if p.endswith(".download.json") or "/ground_truth/" in p]
    assert ws.chunk_input("datacomp-small", "00007") == "data/pools/datacomp-small/shards/00007.index.json"
    assert ws.metadata_layout_inputs("datacomp-small") == {"metadata": "/data/datacomp_small/metadata"}
    assert ws.metadata_layout_params("datacomp-small")["sharding"] == "per_file"
    assert "data/scores/datacomp-small/datacomp-clip-l14/00000.parquet" in inputs
    assert not [p for p in inputs if "/openai-clip-l14/" in p or "/openai-clip-b32/" in p]
