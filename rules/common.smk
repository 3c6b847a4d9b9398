import re
from pathlib import Path

from curate.config import check_references
from curate.selection import STRATEGY_METHODS, strategy_score_source
from curate.workflow import (
    chunk_names,
    chunk_shard_ids,
    fusion_score_files,
    selection_labels,
)

check_references(config)

DATA = config["data_root"]
SCALE = config["scales"][config["scale"]]
SCRIPTS = Path(workflow.basedir) / "scripts"


wildcard_constraints:
    pool=r"[^/]+",
    chunk=r"\d+",
    scorer=r"[^/]+",
    curated_set=r"[^/]+",
    selection=r"[^/]+",
    recipe=r"[^/]+",
    suite=r"[^/]+",
    task=r"[^/]+",
    fusion=r"[^/]+",
    captioner=r"[^/]+",


def pool_chunks(pool):
    entry = config["pools"][pool]
    return chunk_names(entry["n_shards"], entry["shards_per_chunk"])


def get_chunk_shard_ids(wildcards):
    entry = config["pools"][wildcards.pool]
    return chunk_shard_ids(
        wildcards.chunk, entry["n_shards"], entry["shards_per_chunk"]
    )


def get_pool_chunk_dirs(wildcards):
    return expand(
        f"{DATA}/pools/{{pool}}/shards/{{chunk}}",
        pool=wildcards.pool,
        chunk=pool_chunks(wildcards.pool),
    )


def ground_truth_files(pool):
    return expand(
        f"{DATA}/ground_truth/{pool}/{{chunk}}.parquet", chunk=pool_chunks(pool)
    )


def score_files(pool, scorer):
    return expand(
        f"{DATA}/scores/{pool}/{scorer}/{{chunk}}.parquet", chunk=pool_chunks(pool)
    )


def get_scorer_model(wildcards):
    return f"{DATA}/models/scorers/{wildcards.scorer}"


def get_curated_set(wildcards):
    scorer = config["scorers"][wildcards.scorer]
    return f"{DATA}/resources/curated/{scorer['curated_set']}"


def get_selection_inputs(wildcards):
    """The files a selection reads, by role; only what its method needs."""
    entry = config["selections"][wildcards.selection]
    method = entry["method"]
    if method == "no_filter":
        return {"metadata": get_pool_chunk_dirs(wildcards)}
    if method == "oracle":
        return {"ground_truth": ground_truth_files(wildcards.pool)}
    if method == "clip_score":
        return {"scores": score_files(wildcards.pool, entry["scorer"])}
    if method == "fused_score":
        return {"scores": fused_files(wildcards.pool, entry["fusion"])}
    if method in STRATEGY_METHODS:
        return {"scores": strategy_score_files(wildcards.pool, entry)}
    raise ValueError(f"selections.{wildcards.selection}: unknown method {method!r}")


def fused_files(pool, fusion):
    return expand(
        f"{DATA}/fused/{pool}/{fusion}/{{chunk}}.parquet", chunk=pool_chunks(pool)
    )


def get_fusion_stats_inputs(wildcards):
    """Every chunk's score files of the fusion's scorers (chunk-major), and for IN-weighted
    fusions each scorer's evaluation (its ImageNet-analogue accuracy)."""
    fusion = config["fusions"][wildcards.fusion]
    inputs = {
        "scores": fusion_score_files(
            DATA, wildcards.pool, fusion["scorers"], pool_chunks(wildcards.pool)
        )
    }
    if fusion["method"] == "in_weighted":
        suite = fusion["accuracy"]["suite"]
        inputs["accuracy"] = [
            f"{DATA}/evals/scorers/{scorer}/{suite}.jsonl"
            for scorer in fusion["scorers"]
        ]
    return inputs


def get_fuse_chunk_scores(wildcards):
    """One chunk's score files, one per scorer of the fusion, in its order."""
    fusion = config["fusions"][wildcards.fusion]
    return fusion_score_files(
        DATA, wildcards.pool, fusion["scorers"], [wildcards.chunk]
    )


def get_task_dirs(wildcards):
    """The suite's task folders, in the order of its `tasks` entry."""
    tasks = config["suites"][wildcards.suite]["tasks"]
    return [f"{DATA}/tasks/{wildcards.suite}/{task}" for task in tasks]


def table_rows(table, labels=False):
    """One row per selection of a table, all on the scale's pool, recipe and suite; with
    `labels`, each row also names its fusion, scorers and sampler."""
    return [
        (selection_labels(config, selection) if labels else {})
        | {
            "selection": selection,
            "pool": SCALE["pool"],
            "recipe": SCALE["recipe"],
            "suite": SCALE["suite"],
            "subset": f"{DATA}/subsets/{SCALE['pool']}/{selection}.npy",
            "evaluation": f"{DATA}/evals/{SCALE['pool']}/{selection}/{SCALE['recipe']}/{SCALE['suite']}.jsonl",
        }
        for selection in config["tables"][table]["selections"]
    ]


def pending_rows(table):
    """The table's methods not built yet: labels and status, no files."""
    pending = config["tables"][table].get("pending", {})
    return [{"selection": name} | entry for name, entry in pending.items()]


def get_table_inputs(table):
    rows = table_rows(table)
    inputs = {
        "subsets": [row["subset"] for row in rows],
        "evaluations": [row["evaluation"] for row in rows],
    }
    if config["pools"][SCALE["pool"]]["source"] == "synthetic":
        inputs["ground_truth"] = ground_truth_files(SCALE["pool"])
    return inputs


def print_built_tables():
    built = sorted(Path("results").glob("**/*.csv"))
    if built:
        print("Tables written:", *(f"  {path.resolve()}" for path in built), sep="\n")


# MoS strategies (sample weighting, re-captioning): what a selection adds beside its subset.
def strategy_score_files(pool, entry):
    kind, name = strategy_score_source(entry)
    return score_files(pool, name) if kind == "scorer" else fused_files(pool, name)


def get_strategy_scores(wildcards):
    return strategy_score_files(
        wildcards.pool, config["selections"][wildcards.selection]
    )


def get_reshard_extras(wildcards):
    """A sample_weighting selection's weights, a recaption selection's captions."""
    method = config["selections"][wildcards.selection]["method"]
    prefix = f"{DATA}/subsets/{wildcards.pool}/{wildcards.selection}"
    if method == "sample_weighting":
        return {"weights": f"{prefix}.weights.parquet"}
    if method == "recaption":
        return {"captions": f"{prefix}.captions.parquet"}
    return {}


def get_recaption_captions(wildcards):
    """The pool's caption files by the selection's captioner (the caption rule's output)."""
    captioner = config["selections"][wildcards.selection]["captioner"]
    return expand(
        f"{DATA}/captions/{wildcards.pool}/{captioner}/{{chunk}}.parquet",
        chunk=pool_chunks(wildcards.pool),
    )


def get_captioner_curated_set(wildcards):
    captioner = config["captioners"][wildcards.captioner]
    return f"{DATA}/resources/curated/{captioner['curated_set']}"


def suites_from(source):
    """A wildcard pattern matching the suites of one source (synthetic: generated here; local:
    clip_benchmark wds folders put under data_root/tasks/{suite}/{task} beforehand)."""
    names = [
        name for name, suite in config["suites"].items() if suite["source"] == source
    ]
    return "|".join(re.escape(name) for name in names) if names else "(?!)"


def recipes_trained_by(*trainers):
    """A wildcard pattern matching the recipes of these trainers (`trainer`, default open_clip)."""
    names = [
        name
        for name, recipe in config["recipes"].items()
        if recipe.get("trainer", "open_clip") in trainers
    ]
    return "|".join(re.escape(name) for name in names) if names else "(?!)"


def get_llava_base_inputs(wildcards):
    """A tiny LLaVA base is built from a curated set; a real one from local model folders."""
    base = config["recipes"][wildcards.recipe]["base"]
    if base["source"] == "train":
        return {"curated_set": f"{DATA}/resources/curated/{base['curated_set']}"}
    return {
        "vision_tower": base["vision_tower"],
        "language_model": base["language_model"],
    }
