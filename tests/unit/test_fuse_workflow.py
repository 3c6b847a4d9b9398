"""The fuse step (global statistics, then chunks) and the fused_score selection."""

import json

import numpy as np
import pandas as pd
import pytest

from curate.data.records import main_metric_of, write_records
from curate.data.scorefiles import save_scores
from curate.data.subset import u8u8_to_uids
from curate.registry import ConfigError
from curate.reporting.tables import comparison_table
from curate.selection.methods import select
from curate.selection.pool_fusion import FUSED_COLUMN, fuse_chunk, fuse_matrix
from curate.selection.pool_fusion import fusion_statistics as _fusion_statistics
from curate.selection.sampling import SAMPLERS
from curate.workflow.config import check_config
from curate.workflow.tables import selection_labels
from tests.unit.pool_fixtures import uid
from tests.unit.registry_fixtures import fusion as complete_fusion
from tests.unit.registry_fixtures import selection

SCORERS = ["a", "b", "c"]
FUSIONS = {
    "none": complete_fusion("none", ["b"]),
    "sum": complete_fusion("sum", SCORERS),
    "standardised_sum": complete_fusion("standardised_sum", SCORERS),
    "in_weighted": complete_fusion("in_weighted", SCORERS, r=8, accuracy={"suite": "s", "task": "objects"}),
    "mos": complete_fusion("mos", SCORERS, tmin=0.5, tmax=1.5),
    "mos_z": complete_fusion("mos", SCORERS, normalise="zscore"),
}


def fusion_statistics(files, fusion, accuracies=None, tmp_path=None):
    """The statistics as the fusion_stats job computes them; an IN-weighted fusion's accuracies
    are written as its scorers' evaluation records first."""
    inputs = {}
    if accuracies is not None:
        inputs["accuracy"] = []
        for j, accuracy in enumerate(accuracies):
            path = tmp_path / f"accuracy-{j}.jsonl"
            write_records([{"key": "objects", "dataset": "Objects", "metrics": {"main_metric": accuracy}}], path)
            inputs["accuracy"].append(path)
    return _fusion_statistics(files, fusion, ["clip_score"] * len(fusion["scorers"]), inputs)


@pytest.fixture
def pool(tmp_path):
    """3 scorers x 4 chunks of fabricated scores (chunk sizes 7, 1, 12, 5); scorer c skipped uid 3."""
    rng = np.random.default_rng(0)
    sizes = [7, 1, 12, 5]
    files, start = [], 0
    for c, size in enumerate(sizes):
        ids = list(range(start, start + size))
        start += size
        row = []
        for j, scorer in enumerate(SCORERS):
            kept = [i for i in ids if not (scorer == "c" and i == 3)]
            values = (rng.normal(0.3 * j, 0.1 + 0.2 * j, len(kept))).astype(np.float32)
            path = tmp_path / scorer / f"{c:05d}.parquet"
            save_scores(pd.DataFrame({"uid": [uid(i) for i in kept], "clip_score": values}), path)
            row.append(path)
        files.append(row)
    return files


def whole_pool(files, fusion_scorers):
    frames = []
    for j, scorer in enumerate(SCORERS):
        if scorer in fusion_scorers:
            frame = pd.concat([pd.read_parquet(row[j]) for row in files]).rename(columns={"clip_score": scorer})
            frames.append(frame.set_index("uid"))
    joined = pd.concat(frames, axis=1, join="inner")
    return joined.index.tolist(), joined[fusion_scorers].to_numpy(np.float64)


@pytest.mark.parametrize("name", sorted(FUSIONS))
def test_chunked_fusion_from_global_statistics_equals_whole_pool_fusion(pool, name, tmp_path):
    fusion = FUSIONS[name]
    j = [SCORERS.index(s) for s in fusion["scorers"]]
    files = [[row[k] for k in j] for row in pool]
    accuracies = [0.2, 0.5, 0.3] if fusion["method"] == "in_weighted" else None
    stats = json.loads(json.dumps(fusion_statistics(files, fusion, accuracies, tmp_path)))  # as the rule stores it
    columns = ["clip_score"] * len(row_of(files))
    chunked = pd.concat([fuse_chunk(fusion, stats, row, columns) for row in files], ignore_index=True)
    uids, S = whole_pool(pool, fusion["scorers"])
    assert chunked["uid"].tolist() == uids  # uid 3 (not scored by c) left out where c is fused
    assert (uid(3) in uids) == ("c" not in fusion["scorers"])
    whole = fuse_matrix(S, fusion, stats)
    np.testing.assert_array_equal(chunked[FUSED_COLUMN].to_numpy(), whole.astype(np.float32))
    # and the global statistics are those of the whole pool
    np.testing.assert_allclose(stats["mean"], S.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(stats["std"], S.std(axis=0, ddof=1), rtol=1e-12)


def row_of(files):
    return files[0]


def test_fusions_follow_their_definitions(pool, tmp_path):
    uids, S = whole_pool(pool, SCORERS)
    files = pool
    z = (S - S.mean(axis=0)) / S.std(axis=0, ddof=1)
    stats = fusion_statistics(files, FUSIONS["sum"])
    np.testing.assert_allclose(fuse_matrix(S, FUSIONS["sum"], stats), S.sum(axis=1))
    np.testing.assert_allclose(fuse_matrix(S, FUSIONS["standardised_sum"], stats), z.sum(axis=1), atol=1e-12)
    stats = fusion_statistics(files, FUSIONS["in_weighted"], [0.2, 0.5, 0.3], tmp_path)
    # w_hat = (0, 1, 1/3); r = 8 adds 1/7
    assert stats["weights"] == pytest.approx([1 / 7, 1 + 1 / 7, 1 / 3 + 1 / 7])
    np.testing.assert_allclose(
        fuse_matrix(S, FUSIONS["in_weighted"], stats), z @ np.array(stats["weights"]), atol=1e-12
    )
    stats = fusion_statistics(files, FUSIONS["mos"])
    mm = (S - S.min(axis=0)) / (S.max(axis=0) - S.min(axis=0) + 1e-8)
    sig = mm.std(axis=1)
    assert stats["sigma_range"] == pytest.approx([sig.min(), sig.max()])
    fused = fuse_matrix(S, FUSIONS["mos"], stats)
    assert np.all((fused >= mm.min(axis=1) - 1e-12) & (fused <= mm.max(axis=1) + 1e-12))


def test_in_weights_are_the_imagenet_accuracies_of_filtering_with_each_input(tmp_path, pool):
    """FLYT C.5 on Table 2's left panel: B/32 0.282, L/14 0.267, DFN-Base 0.297 (the ImageNet
    accuracy of the model trained on each input's top 20 %). r = 8: w_hat = (0.5, 0, 1), plus
    1/7: w = (9/14, 1/7, 8/7), max / min = 8."""
    stats = fusion_statistics(pool, FUSIONS["in_weighted"], [0.282, 0.267, 0.297], tmp_path)
    assert stats["accuracy"] == pytest.approx([0.282, 0.267, 0.297])
    assert stats["weights"] == pytest.approx([9 / 14, 1 / 7, 8 / 7])


def test_in_weighted_stats_read_the_evaluations_of_each_inputs_filtered_run(config):
    """Not the scorers' own zero-shot accuracy: the model the scale's recipe trains on the subset
    that keeps each input's top 20 % (the configured clip_score selection), on the same pool."""
    from curate.workflow.workspace import Workspace

    ws = Workspace(config)
    inputs = ws.fusion_stats_inputs("synthetic-tiny", "in_weighted_r8")["accuracy"]
    assert inputs == [
        f"data/evals/synthetic-tiny/clip_score_{name}_20/tiny-clip/synthetic.jsonl"
        for name in ("clean", "reader", "weak")
    ]
    # a named selection for an input (FLYT prints one number for HYPE's three inputs), another recipe
    fusion = config["fusions"]["in_weighted_r8"]
    fusion["accuracy"] |= {"selections": {"tiny-clip-reader": "sum_top20"}, "recipe": "tiny-scorer"}
    assert ws.input_filter_evaluations("p", fusion) == [
        f"data/evals/p/{selection}/tiny-scorer/synthetic.jsonl"
        for selection in ("clip_score_clean_20", "sum_top20", "clip_score_weak_20")
    ]


@pytest.mark.parametrize(
    "accuracy, message",
    [
        (
            {"fraction": 0.25},
            r"fusions\.in_weighted_r8\.accuracy: no selection keeps the top 0\.25 of 'tiny-clip-clean'",
        ),
        (
            {"selections": {"tiny-clip-clean": "nope"}},
            r"fusions\.in_weighted_r8\.accuracy\.selections\.tiny-clip-clean",
        ),
        ({"selections": {"zz": "sum_top20"}}, r"accuracy\.selections\.zz: not one of the fusion's scorers"),
        ({"recipe": "nope"}, r"fusions\.in_weighted_r8\.accuracy\.recipe"),
    ],
)
def test_in_weighted_per_input_filters_are_checked(user_config, accuracy, message):
    user_config["fusions"]["in_weighted_r8"]["accuracy"] |= accuracy
    with pytest.raises(ConfigError, match=message):
        check_config(user_config)


def test_flyt_table4_applies_the_medium_head_to_the_small_pool_and_scs_samples_its_logits(user_config):
    """FLYT Sec. 4.4: at small scale the mixing model trained at medium is reused, not retrained,
    and SCS (alpha 0.5, G = 10K) draws the small recipe's 12.8M samples from its raw outputs."""
    from curate.selection.methods import resolve_selection
    from curate.workflow.workspace import Workspace

    config = check_config(user_config | {"scale": "paper"})
    ws = Workspace(config)
    inputs = ws.fuse_chunk_inputs("datacomp-small", "flyt_mflyt_medium_head", "00003")
    assert inputs["mixer"] == "data/fused/datacomp-medium/flyt_mflyt_medium_head/mixer.pt"
    assert inputs["stats"] == "data/fused/datacomp-small/flyt_mflyt_medium_head/stats.json"  # its own pool's
    assert ws.mixer_inputs("datacomp-medium", "flyt_mflyt_medium_head")["reference"] == (
        "data/models/datacomp-medium/no_filter/datacomp-medium"
    )
    own = ws.fuse_chunk_inputs("datacomp-small", "flyt_mflyt", "00003")["mixer"]
    assert own == "data/fused/datacomp-small/flyt_mflyt/mixer.pt"  # without head_pool: trained where fused
    scs = resolve_selection(config, config["selections"]["mflyt_medium_head_scs_a0p5_g10k"])
    assert (scs["n"], scs["batch_size"], scs["alpha"], scs["standardise"]) == (12_800_000, 10_000, 0.5, False)
    # where a scale moves the rows, the head is the scale pool's own
    assert check_config(user_config)["fusions"]["flyt_mflyt_medium_head"]["head_pool"] is None


def test_a_fusion_of_the_wrong_number_of_scorers_is_refused(user_config):
    user_config["fusions"]["single_clean"]["scorers"] = ["tiny-clip-clean", "tiny-clip-weak"]
    with pytest.raises(ConfigError, match=r"fusions\.single_clean\.scorers: method 'none' takes exactly 1"):
        check_config(user_config)
    user_config["fusions"]["single_clean"]["scorers"] = ["tiny-clip-clean"]
    user_config["fusions"]["sieve_clip"]["scorers"] = ["sieve-tiny"]
    with pytest.raises(ConfigError, match=r"fusions\.sieve_clip\.scorers: method 'sieve_clip' takes exactly 2"):
        check_config(user_config)


def test_main_metric_of_reads_the_task_main_metric():
    records = [
        {"key": "objects", "metrics": {"acc1": 0.4, "main_metric": 0.4}},
        {"key": "shape", "metrics": {"main_metric": 0.9}},
    ]
    assert main_metric_of(records, "objects") == 0.4
    with pytest.raises(ValueError, match="no evaluation record"):
        main_metric_of(records, "imagenet")


def write_fused(folder, chunks):
    paths = []
    for c, chunk in enumerate(chunks):
        path = folder / f"{c:05d}.parquet"
        save_scores(
            pd.DataFrame(
                {"uid": [uid(i) for i, _ in chunk], FUSED_COLUMN: np.array([s for _, s in chunk], np.float32)}
            ),
            path,
            [FUSED_COLUMN],
        )
        paths.append(path)
    return paths


def test_fused_score_top_fraction_keeps_by_the_datacomp_rule(tmp_path):
    paths = write_fused(tmp_path, [[(i, i / 10) for i in range(5)], [(i, i / 10) for i in range(5, 10)]])
    subset = select(
        selection("fused_score", FUSED_COLUMN, fusion="f", sampler="top_fraction", fraction=0.2), {"scores": paths}
    )
    # n = 2, thr = sorted_desc[2] = 0.7: n + 1 samples (docs/algorithms.md §1)
    assert sorted(u8u8_to_uids(subset)) == [uid(7), uid(8), uid(9)]


def test_fused_score_scs_draws_exactly_n_in_rounds_of_g_with_repeats(tmp_path):
    rng = np.random.default_rng(1)
    paths = write_fused(tmp_path, [[(i, rng.normal()) for i in range(c * 50, c * 50 + 50)] for c in range(2)])
    params = selection("fused_score", FUSED_COLUMN, fusion="f", sampler="scs", alpha=0.5, batch_size=10, n=250, seed=3)
    subset = select(params, {"scores": paths})
    uids = u8u8_to_uids(subset)
    assert len(uids) == 250  # n is a count, not the pool's size (100 here)
    counts = pd.Series(uids).value_counts()
    assert counts.max() <= 25  # distinct within each of the 25 rounds of G = 10
    again = select(params, {"scores": paths})
    assert np.array_equal(np.sort(subset), np.sort(again))  # seeded
    with pytest.raises(ValueError, match="samples_seen"):  # unresolved: the workflow resolves it first
        select(params | {"n": "samples_seen"}, {"scores": paths})


def test_scs_samples_the_scores_as_given_unless_told_to_standardise():
    """FLYT reads the scores as logits: with scores (0, ln 3), G = 1 and alpha = 0 every draw is
    item 1 with probability e^ln3 / (1 + e^ln3) = 3/4. Z-scored first (mean ln3/2, unbiased std
    ln3/sqrt(2)) the scores become (-1/sqrt2, 1/sqrt2): item 1 with e^sqrt2 / (1 + e^sqrt2) = 0.8044."""
    uids = [uid(0), uid(1)]
    scores = np.array([0.0, np.log(3.0)])
    params = selection("fused_score", fusion="f", sampler="scs", alpha=0.0, batch_size=1, n=40_000, seed=0)
    assert params["standardise"] is False
    raw = SAMPLERS["scs"].run(uids, scores, params)
    std = SAMPLERS["scs"].run(uids, scores, params | {"standardise": True})
    share = {name: sum(u == uid(1) for u in drawn) / 40_000 for name, drawn in (("raw", raw), ("std", std))}
    assert abs(share["raw"] - 0.75) < 0.01  # 4.6 standard errors
    assert abs(share["std"] - np.exp(np.sqrt(2)) / (1 + np.exp(np.sqrt(2)))) < 0.01
    with pytest.raises(KeyError, match="unknown sampler 'magic'"):
        SAMPLERS["magic"]


def test_scs_draws_its_recipes_samples_seen(config):
    """``n: samples_seen`` is the training budget of the selection's recipe, else the scale's: at
    tiny, tiny-clip's 16 000 draws from the 4 000-sample pool (FLYT: 128M at medium, 12.8M at
    small, with G = 100K and 10K: 1 280 rounds each)."""
    from curate.selection.methods import resolve_selection

    entry = config["selections"]["mflyt_scs"]
    assert resolve_selection(config, entry)["n"] == 16_000 == config["recipes"]["tiny-clip"]["samples_seen"]
    assert resolve_selection(config, entry | {"recipe": "datacomp-small"})["n"] == 12_800_000
    assert resolve_selection(config, entry | {"n": 500})["n"] == 500  # a count stays a count
    assert resolve_selection(config, config["selections"]["sum_top20"]) == config["selections"]["sum_top20"]


def test_a_moved_scs_selection_draws_the_scale_recipes_budget_in_as_many_rounds(user_config):
    """A paper selection naming FLYT's medium setting (G = 100K of 128M) draws, where a scale moves
    the rows, the scale recipe's budget with G scaled alike: 100 000 x 16 000 / 128M = 12.5 -> 12 at
    tiny, 10 000 at small (FLYT's small setting); kept as named at the paper scale."""
    from curate.selection.methods import resolve_selection

    def resolved(scale):
        config = check_config(user_config | {"scale": scale})
        return resolve_selection(config, config["selections"]["in_weighted_r8_scs_a0p15_g100k"])

    tiny, small, paper = resolved("tiny"), resolved("small"), resolved("paper")
    assert (tiny["n"], tiny["batch_size"], tiny["recipe"]) == (16_000, 12, "tiny-clip")
    assert (small["n"], small["batch_size"], small["recipe"]) == (12_800_000, 10_000, "datacomp-small")
    assert (paper["n"], paper["batch_size"], paper["recipe"]) == (128_000_000, 100_000, "datacomp-medium")


@pytest.mark.parametrize(
    "mutate, key",
    [
        (lambda c: c["fusions"]["sum"].update(scorers=["tiny-clip-clean", "zz"]), r"fusions\.sum\.scorers"),
        (lambda c: c["fusions"]["in_weighted_r8"]["accuracy"].update(task="imagenet"), r"fusions\.in_weighted_r8"),
        (lambda c: c["selections"]["sum_top20"].update(fusion="nope"), r"selections\.sum_top20\.fusion"),
        (lambda c: c["tables"]["table2"].update(pending={"sum_top20": {"status": "?"}}), r"tables\.table2\.pending"),
        (lambda c: c["selections"]["sum_scs"].pop("batch_size"), r"selections\.sum_scs\.batch_size: required"),
        (lambda c: c["selections"]["sum_scs"].update(batch_fraction=0.1), r"selections\.sum_scs\.batch_fraction"),
        (lambda c: c["selections"]["sum_scs"].update(recipe="nope"), r"selections\.sum_scs\.recipe"),
        (lambda c: c["selections"]["sum_scs"].update(recipe="tiny-mos-clip"), r"sum_scs\.n: recipe 'tiny-mos-clip'"),
    ],
)
def test_config_references_of_fusions_are_checked(user_config, mutate, key):
    mutate(user_config)
    with pytest.raises(ConfigError, match=key):
        check_config(user_config)


def test_selection_labels(config):
    assert selection_labels(config, "sum_top20") == {
        "fusion": "sum",
        "scorers": "tiny-clip-clean+tiny-clip-reader+tiny-clip-weak",
        "sampler": "top_fraction",
    }
    assert selection_labels(config, "clip_score_clean_20") == {
        "fusion": "none",
        "scorers": "tiny-clip-clean",
        "sampler": "top_fraction",
    }
    assert selection_labels(config, "no_filter")["sampler"] == "all"
    assert selection_labels(config, "basic_filter") == {"fusion": "", "scorers": "", "sampler": "basic_filter"}


def test_comparison_table_lists_pending_methods_with_their_status_and_no_numbers(tmp_path):
    from curate.data.records import write_records
    from curate.data.subset import save_subset

    subset = tmp_path / "x.npy"
    save_subset(subset, [uid(1), uid(1), uid(2)])
    evaluation = tmp_path / "x.jsonl"
    write_records([{"key": "objects", "dataset": "Objects", "metrics": {"main_metric": 0.5}}], evaluation)
    truth = tmp_path / "truth.parquet"
    pd.DataFrame(
        {
            "uid": [uid(1), uid(2), uid(3)],
            "is_clean": [True, False, True],
            "noise_type": ["clean", "gibberish", "clean"],
        }
    ).to_parquet(truth)
    rows = [
        {
            "selection": "x",
            "fusion": "mos",
            "scorers": "a+b",
            "sampler": "scs",
            "pool": "p",
            "recipe": "r",
            "suite": "s",
            "subset": subset,
            "evaluation": evaluation,
        }
    ]
    pending = [{"selection": "later", "status": "not built yet: Sieve captioning rule", "fusion": "sieve_clip"}]
    table = comparison_table(rows, pending, [truth], {"Objects": ["objects"]})
    assert table["status"].tolist() == ["ok", "not built yet: Sieve captioning rule"]
    assert table.loc[0, "subset_size"] == 3 and table.loc[0, "unique_uids"] == 2
    assert table.loc[0, "precision"] == 0.5 and table.loc[0, "recall"] == 0.5
    assert pd.isna(table.loc[1, "subset_size"]) and pd.isna(table.loc[1, "Average"])
    assert list(table.columns[:5]) == ["selection", "fusion", "scorers", "sampler", "status"]
