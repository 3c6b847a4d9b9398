"""Where every artefact lives: one named template per artefact, and nowhere else.

Intermediates go under the config's ``data_root`` (``{data}``), tables and figures under
``results/``. A template's other fields are Snakemake wildcards: :meth:`Paths.__call__` fills the
ones given and leaves the rest as ``{name}``, so the same call gives a rule its output pattern
(no values) and an input function a concrete file (all values).

A real pool's chunk is read through its download report (written once every shard of the chunk is
complete, the shards in the folder beside it), or, for a download read in place, through its index
(the folder beside it holds links to the shards); a synthetic pool's through its shard folder,
which its generator writes. :func:`chunk_input_template` is the one place that choice is made.
"""

from __future__ import annotations

import string

TEMPLATES = {
    # pools: shards, ground truth (synthetic pools), metadata (real pools)
    "pool_chunk": "{data}/pools/{pool}/shards/{chunk}",
    "download_report": "{data}/pools/{pool}/shards/{chunk}.download.json",
    # a download read in place (pool `root`): the chunk's index, its links in shards/{chunk}/
    "pool_index": "{data}/pools/{pool}/shards/{chunk}.index.json",
    "ground_truth": "{data}/ground_truth/{pool}/{chunk}.parquet",
    "metadata_fetched": "{data}/pools/{pool}/metadata/source/fetch.json",
    "metadata_prepared": "{data}/pools/{pool}/metadata/prepared.parquet",
    "metadata_split": "{data}/pools/{pool}/metadata/chunks/split.json",
    "metadata_chunk": "{data}/pools/{pool}/metadata/chunks/{chunk}.parquet",
    # which metadata rows each shard holds (the metadata scorers read a chunk's rows through it)
    "metadata_layout": "{data}/pools/{pool}/metadata/layout.json",
    # sets and tasks built or fetched by the workflow
    "curated_set": "{data}/resources/curated/{curated_set}",
    "langid_model": "{data}/resources/langid/{langid}.bin",
    "dataset": "{data}/datasets/{dataset}",
    "synthetic_task": "{data}/tasks/{suite}/{task}",
    "local_task": "{data}/evalsets/{suite}/{task}",
    # models: trained here, fetched, converted
    "trained_scorer": "{data}/models/scorers/{scorer}",
    "pretrained_model": "{data}/models/pretrained/{model}",
    "converted_model": "{data}/models/converted/{model}",
    "model_cache": "{data}/models/cache",
    "captioner_model": "{data}/models/captioners/{captioner}",
    "sentence_encoder_model": "{data}/models/sentence_encoders/{sentence_encoder}",
    "llava_base": "{data}/models/llava_bases/{recipe}",
    # per-chunk scores, embeddings and captions
    "scores": "{data}/scores/{pool}/{scorer}/{chunk}.parquet",
    "score_report": "{data}/scores/{pool}/{scorer}/{chunk}.report.json",
    "embeddings": "{data}/embeddings/{pool}/{scorer}/{chunk}.npz",
    "embedding_report": "{data}/embeddings/{pool}/{scorer}/{chunk}.report.json",
    "classifier": "{data}/scores/{pool}/{scorer}/classifier.npz",
    "dataset_embeddings": "{data}/embeddings/datasets/{dataset}/{scorer}.npz",
    "curated_embeddings": "{data}/embeddings/curated/{curated_set}/{scorer}.npz",
    "captions": "{data}/captions/{pool}/{captioner}/{chunk}.parquet",
    "caption_report": "{data}/captions/{pool}/{captioner}/{chunk}.report.json",
    # fusions: pool statistics, trained mixing heads, fused chunks
    "fusion_stats": "{data}/fused/{pool}/{fusion}/stats.json",
    "mixer": "{data}/fused/{pool}/{fusion}/mixer.pt",
    "mixer_summary": "{data}/fused/{pool}/{fusion}/mixer.json",
    "mixer_extractor": "{data}/fused/{pool}/{fusion}/extractor",
    "fused": "{data}/fused/{pool}/{fusion}/{chunk}.parquet",
    # subsets and what travels with them into the reshard
    "subset": "{data}/subsets/{pool}/{selection}.npy",
    # subsets published elsewhere (config `published_uids`), fetched and checked once
    "published_uids": "{data}/published_uids/{published}.npy",
    "published_uids_record": "{data}/published_uids/{published}.json",
    "sample_weights": "{data}/subsets/{pool}/{selection}.weights.parquet",
    "recaptions": "{data}/subsets/{pool}/{selection}.captions.parquet",
    "reshard": "{data}/reshards/{pool}/{selection}",
    # models trained on subsets and their evaluations
    "model": "{data}/models/{pool}/{selection}/{recipe}",
    "blip_converted": "{data}/models/{pool}/{selection}/{recipe}.transformers",
    # a training's checkpoints while it runs: outside the declared model folder, so a failed,
    # retried or requeued attempt resumes from them (curate.training.resume)
    "train_scratch": "{data}/scratch/train/{pool}/{selection}/{recipe}",
    "scorer_scratch": "{data}/scratch/scorers/{scorer}",
    "evaluation": "{data}/evals/{pool}/{selection}/{recipe}/{suite}.jsonl",
    "scorer_evaluation": "{data}/evals/scorers/{scorer}/{suite}.jsonl",
    # each task's record kept as it finishes, until the jsonl is written (not a declared output:
    # a failed or killed evaluation keeps it, and its rerun evaluates only the other tasks)
    "evaluation_progress": "{data}/evals/{pool}/{selection}/{recipe}/{suite}.tasks",
    "scorer_evaluation_progress": "{data}/evals/scorers/{scorer}/{suite}.tasks",
    # results
    "table": "{results}/{table}.csv",
    "paper_table": "{results}/{paper}/{table}.csv",
    "figure": "{results}/figures/{figure}.png",
    "submission_results": "{results}/submissions/{pool}/{selection}/{recipe}/{suite}/eval_results.jsonl",
    "submission_uids": "{results}/submissions/{pool}/{selection}/{recipe}/{suite}/uids.npy",
    "submission_info": "{results}/submissions/{pool}/{selection}/{recipe}/{suite}/info.json",
    "report": "{results}/report.html",
    # every job's log
    "log": "{data}/logs/{rule}/{job}.log",
}

RESULTS = "results"

#: The recipe name of a table row's replicate trained with ``seed`` (config ``seeds``: replicate r
#: trains the row's recipe with the recipe's seed + r). Its model and evaluation live where the
#: ``model`` and ``evaluation`` templates put a recipe of that name:
#: ``models/{pool}/{selection}/{recipe}.seed{seed}/``; replicate 0 keeps the recipe's own name, so
#: a one-seed run's paths are those of a run without replicates.
REPLICATE = "{recipe}.seed{seed}"


def replicate_name(recipe: str, seed: int) -> str:
    """The recipe (and path segment) of the replicate of ``recipe`` trained with ``seed``."""
    return REPLICATE.format(recipe=recipe, seed=int(seed))


def fields(name: str) -> list[str]:
    """The wildcard names of a template, in order (``data`` and ``results`` excluded)."""
    return [f for _, f, _, _ in string.Formatter().parse(TEMPLATES[name]) if f and f not in ("data", "results")]


class _Keep(dict):
    def __missing__(self, key):
        return "{" + key + "}"


def template(name: str, data_root: str, results: str = RESULTS, **values) -> str:
    """Template ``name`` with ``data_root``, ``results`` and ``values`` filled in; every field
    not given stays a wildcard. An unknown name or field raises."""
    if name not in TEMPLATES:
        raise KeyError(f"no path template {name!r}; known: {', '.join(TEMPLATES)}")
    unknown = set(values) - set(fields(name))
    if unknown:
        raise KeyError(f"path template {name!r} has no field {sorted(unknown)[0]!r} (fields: {fields(name)})")
    return TEMPLATES[name].format_map(_Keep(data=data_root, results=results, **{k: str(v) for k, v in values.items()}))


def chunk_input_template(pool_entry: dict) -> str:
    """The template of the file a pool chunk's consumers depend on: the synthetic generator's shard
    folder, the index of a download read in place (``root``), or the download report of a pool
    the workflow downloads."""
    if pool_entry["source"] == "synthetic":
        return "pool_chunk"
    return "pool_index" if pool_entry.get("root") else "download_report"


class Paths:
    """The templates bound to one ``data_root`` (and results folder)."""

    def __init__(self, data_root: str = "data", results: str = RESULTS):
        self.data_root, self.results = str(data_root), str(results)

    def __call__(self, name: str, **values) -> str:
        return template(name, self.data_root, self.results, **values)

    def log(self, rule: str, *wildcards: str) -> str:
        """A rule's log: ``{data}/logs/<rule>/{w1}/{w2}....log`` over its wildcards."""
        job = "/".join("{" + w + "}" for w in wildcards) if wildcards else rule
        return template("log", self.data_root, self.results, rule=rule, job=job)

    def per_chunk(self, name: str, chunks, **values) -> list[str]:
        return [self(name, chunk=chunk, **values) for chunk in chunks]
