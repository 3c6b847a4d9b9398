from pathlib import Path

from curate.config import check_references
from curate.workflow import (
    chunk_input,
    chunk_names,
    chunk_shard_ids,
    fusion_score_files,
    selection_labels,
    table_selections,
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
    model=r"[^/]+",


def pool_chunks(pool):
    entry = config["pools"][pool]
    return chunk_names(entry["n_shards"], entry["shards_per_chunk"])


def get_chunk_shard_ids(wildcards):
    entry = config["pools"][wildcards.pool]
    return chunk_shard_ids(
        wildcards.chunk, entry["n_shards"], entry["shards_per_chunk"]
    )


def get_pool_chunk_dirs(wildcards):
    """Every chunk of the pool: shard folders (synthetic) or download reports (real pools)."""
    entry = config["pools"][wildcards.pool]
    return [
        chunk_input(DATA, wildcards.pool, entry, chunk)
        for chunk in pool_chunks(wildcards.pool)
    ]


def get_chunk_shards(wildcards):
    """One chunk: its shard folder (synthetic) or its download report (real pools)."""
    entry = config["pools"][wildcards.pool]
    return chunk_input(DATA, wildcards.pool, entry, wildcards.chunk)


def get_pool_metadata(wildcards):
    """What a real pool's metadata is split from: the fetched DataComp parquet as it is, or
    the prepared (renamed, uid-made, sampled) parquet of other sources."""
    metadata = config["pools"][wildcards.pool]["metadata"]
    if config["pools"][wildcards.pool]["source"] == "datacomp" and not (
        metadata.get("columns") or metadata.get("uid_from") or metadata.get("sample")
    ):
        return f"{DATA}/pools/{wildcards.pool}/metadata/source/fetch.json"
    return f"{DATA}/pools/{wildcards.pool}/metadata/prepared.parquet"


def ground_truth_files(pool):
    return expand(
        f"{DATA}/ground_truth/{pool}/{{chunk}}.parquet", chunk=pool_chunks(pool)
    )


def score_files(pool, scorer):
    return expand(
        f"{DATA}/scores/{pool}/{scorer}/{{chunk}}.parquet", chunk=pool_chunks(pool)
    )


def get_scorer_model(wildcards):
    """A trained scorer's folder, or the fetched folder of a pretrained scorer's model."""
    entry = config["scorers"][wildcards.scorer]
    if entry["source"] == "pretrained":
        return f"{DATA}/models/pretrained/{entry['model']}"
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
    suite = config["suites"][wildcards.suite]
    folder = "evalsets" if suite["source"] == "local" else "tasks"
    return [f"{DATA}/{folder}/{wildcards.suite}/{task}" for task in suite["tasks"]]


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
        for selection in table_selections(config, table)
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
