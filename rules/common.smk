from pathlib import Path

import yaml

from curate.baseline_selection import BASELINE_METHODS
from curate.config import check_references
from curate.embedding_scores import CLASSIFIER_METHODS
from curate.figures import figure_plans
from curate.paper_tables import (
    apply_stand_ins,
    implemented_methods,
    resolve_table,
    table_evaluations,
)
from curate.papers import load_papers, table_ids
from curate.selection import STRATEGY_METHODS, strategy_score_source
from curate.workflow import (
    chunk_input,
    chunk_names,
    chunk_shard_ids,
    fusion_score_files,
    model_folder,
    names_pattern,
    score_column,
    selection_labels,
    table_selections,
    training_gpus,
)

# The scale's stand-ins (the papers' scorers replaced by configured ones, curate.paper_tables),
# applied once, here, before any rule reads the config.
config.update(apply_stand_ins(config))
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
    sentence_encoder=r"[^/]+",
    langid=r"[^/]+",
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
        return model_folder(DATA, config["models"], entry["model"])
    return f"{DATA}/models/scorers/{wildcards.scorer}"


def get_conversion_inputs(wildcards):
    """An original checkpoint's fetched folder and the model whose processor it takes."""
    entry = config["models"][wildcards.model]
    return {
        "checkpoint": f"{DATA}/models/pretrained/{wildcards.model}",
        "processor": model_folder(DATA, config["models"], entry["processor"]),
    }


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
    if method in BASELINE_METHODS:
        return get_baseline_inputs(wildcards.pool, entry)
    if method in STRATEGY_METHODS:
        return {"scores": strategy_score_files(wildcards.pool, entry)}
    raise ValueError(f"selections.{wildcards.selection}: unknown method {method!r}")


def get_baseline_inputs(pool, entry):
    """A DataComp baseline reads the pool's metadata and a language detector; the image-based
    ones a CLIP scorer's chunk embeddings and the downstream set's; the CLIP ones its scores.
    """
    inputs = {
        "metadata": expand(
            f"{DATA}/pools/{pool}/shards/{{chunk}}", chunk=pool_chunks(pool)
        ),
        "langid": f"{DATA}/resources/langid/{entry['langid']}.bin",
    }
    if "embeddings" in entry:
        clip = entry["embeddings"]
        inputs["embeddings"] = expand(
            f"{DATA}/embeddings/{pool}/{clip}/{{chunk}}.npz", chunk=pool_chunks(pool)
        )
        inputs["target"] = f"{DATA}/embeddings/downstream/{entry['target']}/{clip}.npz"
    if "scorer" in entry:
        inputs["scores"] = score_files(pool, entry["scorer"])
    return inputs


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


def get_fuse_chunk_inputs(wildcards):
    """One chunk's score files (one per scorer of the fusion, in its order), the pool-wide
    statistics, and for M-FLYT the trained mixing head."""
    fusion = config["fusions"][wildcards.fusion]
    inputs = {
        "scores": fusion_score_files(
            DATA, wildcards.pool, fusion["scorers"], [wildcards.chunk]
        ),
        "stats": f"{DATA}/fused/{wildcards.pool}/{wildcards.fusion}/stats.json",
    }
    if fusion["method"] in ("mflyt", "eflyt"):
        inputs["mixer"] = f"{DATA}/fused/{wildcards.pool}/{wildcards.fusion}/mixer.pt"
    if fusion["method"] == "eflyt":
        extractor = fusion["scorers"][0]
        inputs["embeddings"] = (
            f"{DATA}/embeddings/{wildcards.pool}/{extractor}/{wildcards.chunk}.npz"
        )
    return inputs


def fusion_columns(fusion):
    """Each scorer's score column, in the fusion's scorer order."""
    return [
        score_column(config["scorers"][scorer])
        for scorer in config["fusions"][fusion]["scorers"]
    ]


def get_mixer_inputs(wildcards):
    """What M-FLYT trains on: every chunk's scores and shards, the pool-wide statistics, the
    reference CLIP (trained on a selection of the same pool) and the labelled downstream set
    with its task's templates."""
    fusion = config["fusions"][wildcards.fusion]
    reference, downstream = fusion["reference"], fusion["downstream"]
    inputs = {
        "stats": f"{DATA}/fused/{wildcards.pool}/{wildcards.fusion}/stats.json",
        "scores": fusion_score_files(
            DATA, wildcards.pool, fusion["scorers"], pool_chunks(wildcards.pool)
        ),
        "pool": get_pool_chunk_dirs(wildcards),
        "downstream": f"{DATA}/downstream/{downstream['suite']}.npz",
        "templates": f"{DATA}/tasks/{downstream['suite']}/{downstream['task']}",
    }
    if "scorer" in reference:
        inputs["reference"] = f"{DATA}/models/scorers/{reference['scorer']}"
    else:
        inputs["reference"] = (
            f"{DATA}/models/{wildcards.pool}/{reference['selection']}/{reference['recipe']}"
        )
    if fusion["method"] == "eflyt":
        inputs["embeddings"] = expand(
            f"{DATA}/embeddings/{wildcards.pool}/{fusion['scorers'][0]}/{{chunk}}.npz",
            chunk=pool_chunks(wildcards.pool),
        )
    return inputs


def scorers_of(library):
    """A wildcard pattern of the scorers of one library (each kind has its own score rule)."""
    return names_pattern(
        name for name, entry in config["scorers"].items() if entry["library"] == library
    )


def get_caption_file(wildcards):
    captioner = config["scorers"][wildcards.scorer]["captioner"]
    return f"{DATA}/captions/{wildcards.pool}/{captioner}/{wildcards.chunk}.parquet"


def get_sentence_encoder(wildcards):
    encoder = config["scorers"][wildcards.scorer]["sentence_encoder"]
    return f"{DATA}/models/sentence_encoders/{encoder}"


def get_captioner_curated_set(wildcards):
    captioner = config["captioners"][wildcards.captioner]
    return f"{DATA}/resources/curated/{captioner['curated_set']}"


def get_embedding_score_inputs(wildcards):
    """The chunk's embeddings by the scorer's CLIP, and for NormSim the target set's."""
    scorer = config["scorers"][wildcards.scorer]
    clip = scorer["embeddings"]
    inputs = {
        "embeddings": f"{DATA}/embeddings/{wildcards.pool}/{clip}/{wildcards.chunk}.npz"
    }
    if scorer["method"] == "normsim_inf":
        inputs["target"] = f"{DATA}/embeddings/downstream/{scorer['target']}/{clip}.npz"
    if scorer["method"] in CLASSIFIER_METHODS:
        inputs["classifier"] = (
            f"{DATA}/scores/{wildcards.pool}/{wildcards.scorer}/classifier.npz"
        )
    return inputs


def get_classifier_inputs(wildcards):
    """A classifier scorer learns its positives (the downstream set's images, or a curated set's
    pairs: FLYT's ImageNet-train and CC2M) against every chunk's embeddings by its CLIP.
    """
    scorer = config["scorers"][wildcards.scorer]
    clip = scorer["embeddings"]
    if scorer["method"] == "image_classifier":
        positives = f"{DATA}/embeddings/downstream/{scorer['target']}/{clip}.npz"
    else:
        positives = f"{DATA}/embeddings/curated/{scorer['positives']}/{clip}.npz"
    return {
        "embeddings": expand(
            f"{DATA}/embeddings/{wildcards.pool}/{clip}/{{chunk}}.npz",
            chunk=pool_chunks(wildcards.pool),
        ),
        "positives": positives,
    }


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


def suites_from(source):
    """A wildcard pattern matching the suites of one source (synthetic: generated here; local:
    clip_benchmark wds folders put under data_root/tasks/{suite}/{task} beforehand)."""
    return names_pattern(
        name for name, suite in config["suites"].items() if suite["source"] == source
    )


def get_training_gpus(wildcards):
    return training_gpus(config["recipes"][wildcards.recipe])


def recipes_trained_by(*trainers):
    """A wildcard pattern matching the recipes of these trainers (`trainer`, default open_clip)."""
    return names_pattern(
        name
        for name, recipe in config["recipes"].items()
        if recipe.get("trainer", "open_clip") in trainers
    )


def selection_params(selection):
    """A selection's config entry, plus the score column of its scorer (each scorer's files
    hold the score under its own name: clip_score, sieve_score, ...)."""
    entry = config["selections"][selection]
    if "scorer" in entry:
        return entry | {
            "score_column": score_column(config["scorers"][entry["scorer"]])
        }
    return entry


def get_llava_base_inputs(wildcards):
    """A tiny LLaVA base is built from a curated set; a real one from two fetched `models:`
    entries, or from two folders put in place by hand (`local`)."""
    base = config["recipes"][wildcards.recipe]["base"]
    if base["source"] == "train":
        return {"curated_set": f"{DATA}/resources/curated/{base['curated_set']}"}
    if base["source"] == "models":
        return {
            part: f"{DATA}/models/pretrained/{base[part]}"
            for part in ("vision_tower", "language_model")
        }
    return {
        "vision_tower": base["vision_tower"],
        "language_model": base["language_model"],
    }


# ---- Paper tables, figures, submissions (rules/papers.smk) ------------------------------------
# Which rows and figures the current scale can build is computed from the config by
# curate.paper_tables and curate.figures; these wrappers only bind the workflow's globals.

PAPERS = load_papers(Path(workflow.basedir) / "papers")
with open(Path(workflow.basedir) / "schemas" / "config.schema.yaml") as schema:
    IMPLEMENTED_METHODS = implemented_methods(yaml.safe_load(schema))
FIGURES = figure_plans(config, DATA)
# report categories: a paper's (or a figure's, by its name's first word) short name
CATEGORIES = {"datacomp": "DataComp", "sieve": "Sieve", "mos": "MoS", "flyt": "FLYT"}


def paper_table_rows(paper, table):
    """Every row of a paper table resolved at the current scale (built or not, and why)."""
    return resolve_table(
        config, PAPERS[paper]["tables"][table], IMPLEMENTED_METHODS, DATA
    )


def get_paper_table_evaluations(wildcards):
    return table_evaluations(paper_table_rows(wildcards.paper, wildcards.table))


def paper_table_targets():
    return [f"results/{paper}/{table}.csv" for paper, table in table_ids(PAPERS)]


def get_figure_inputs(wildcards):
    return FIGURES[wildcards.figure]["inputs"]


def figure_targets(kind=None):
    return [
        f"results/figures/{name}.png"
        for name, plan in FIGURES.items()
        if kind is None or plan["type"] == kind
    ]


def figure_category(wildcards):
    return CATEGORIES.get(wildcards.figure.split("_")[0], "Workflow results")


def paper_category(wildcards):
    return CATEGORIES.get(wildcards.paper, wildcards.paper)


# ---- BLIP (rules/blip.smk) --------------------------------------------------------------------
def blip_recipes(library):
    """A wildcard pattern matching the blip recipes of one library (lavis: the real trainer in
    its own env; transformers: the tiny one)."""
    return names_pattern(
        name
        for name, recipe in config["recipes"].items()
        if recipe.get("trainer") == "blip" and recipe.get("library") == library
    )


def get_tiny_blip_inputs(wildcards):
    """The reshard it trains on and the curated set its tokenizer is fitted to."""
    tokenizer = config["recipes"][wildcards.recipe]["tokenizer"]
    return {
        "reshard": f"{DATA}/reshards/{wildcards.pool}/{wildcards.selection}",
        "curated_set": f"{DATA}/resources/curated/{tokenizer['curated_set']}",
    }
