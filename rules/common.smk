from pathlib import Path

from curate.config import check_references
from curate.workflow import chunk_names, chunk_shard_ids

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
    raise ValueError(f"selections.{wildcards.selection}: unknown method {method!r}")


def get_task_dirs(wildcards):
    """The suite's task folders, in the order of its `tasks` entry."""
    tasks = config["suites"][wildcards.suite]["tasks"]
    return [f"{DATA}/tasks/{wildcards.suite}/{task}" for task in tasks]


def table_rows(table):
    """One row per selection of a table, all on the scale's pool, recipe and suite."""
    return [
        {
            "selection": selection,
            "pool": SCALE["pool"],
            "recipe": SCALE["recipe"],
            "suite": SCALE["suite"],
            "subset": f"{DATA}/subsets/{SCALE['pool']}/{selection}.npy",
            "evaluation": f"{DATA}/evals/{SCALE['pool']}/{selection}/{SCALE['recipe']}/{SCALE['suite']}.jsonl",
        }
        for selection in config["tables"][table]["selections"]
    ]


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
