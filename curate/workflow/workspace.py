"""What the rules ask of a complete config: the files each job reads, the names each rule
builds. One :class:`Workspace` per workflow run (``rules/common.smk``); its methods are the
rules' input functions, each a question to a registry or to the paths module, so the Snakefile
holds no logic and every answer is unit-tested.
"""

from __future__ import annotations

import re

from curate.data.chunks import chunk_names, chunk_shard_ids
from curate.data.scorefiles import score_contract as _contract
from curate.scoring.components import LANGID_MODELS, embeddings_owner, is_trained
from curate.scoring.kinds import SCORER_KINDS, score_column, score_contract
from curate.selection.fusion import FUSIONS
from curate.selection.methods import SELECTIONS, resolve_selection, score_column_of, score_source
from curate.selection.pool_fusion import FUSED_COLUMN
from curate.training.trainers import TRAINERS, train_rule
from curate.workflow.paths import Paths, chunk_input_template


def names_pattern(names) -> str:
    """A wildcard regex matching exactly these names (one that matches nothing when empty), so that
    rules writing the same path pattern for different kinds never overlap."""
    names = sorted(names)
    return "|".join(re.escape(name) for name in names) if names else "(?!)"


class Workspace:
    def __init__(self, config: dict):
        self.config = config
        self.paths = Paths(config["data_root"])
        self.scale = config["scales"][config["scale"]]

    #: the per-chunk files a pool's ``precomputed`` scorers are read from instead (`scorer_on`)
    SCORER_FILES = ("scores", "score_report", "embeddings")

    def path(self, name: str, **values) -> str:
        if name in self.SCORER_FILES and "pool" in values and "scorer" in values:
            values = dict(values, scorer=self.scorer_on(values["pool"], values["scorer"]))
        return self.paths(name, **values)

    def scorer_on(self, pool: str, scorer: str) -> str:
        """The scorer whose files hold ``scorer``'s scores and embeddings on ``pool``: the pool's
        ``precomputed`` metadata scorer where it ships them (DataComp's OpenAI B/32 and L/14), so
        every reader of a scorer's files on that pool reads the metadata instead of a GPU job's."""
        return (self.config["pools"][pool].get("precomputed") or {}).get(scorer, scorer)

    def replicate_paths(self, name: str, recipe: str, **values) -> list[str]:
        """Template ``name`` (``model``, ``evaluation``) of each seed's replicate of ``recipe``."""
        from curate.workflow.scales import replicates

        return [self.paths(name, recipe=run, **values) for run in replicates(self.config, recipe)]

    # ---- pools -------------------------------------------------------------------------------
    def chunks(self, pool: str) -> list[str]:
        entry = self.config["pools"][pool]
        return chunk_names(entry["n_shards"], entry["shards_per_chunk"])

    def chunk_shard_ids(self, pool: str, chunk: str) -> list[int]:
        entry = self.config["pools"][pool]
        return chunk_shard_ids(chunk, entry["n_shards"], entry["shards_per_chunk"])

    def chunk_input(self, pool: str, chunk: str) -> str:
        """The file one chunk's consumers depend on (`curate.workflow.paths.chunk_input_template`)."""
        return self.path(chunk_input_template(self.config["pools"][pool]), pool=pool, chunk=chunk)

    def chunk_inputs(self, pool: str) -> list[str]:
        return [self.chunk_input(pool, chunk) for chunk in self.chunks(pool)]

    def per_chunk(self, name: str, pool: str, **values) -> list[str]:
        return [self.path(name, pool=pool, chunk=chunk, **values) for chunk in self.chunks(pool)]

    def in_place(self, pool: str) -> bool:
        """Whether a pool is an existing download read where it is (``layout`` and ``root``)."""
        return bool(self.config["pools"][pool].get("root"))

    def has_metadata(self, pool: str) -> bool:
        """Whether a pool has metadata files (DataComp's, fetched or in place) a layout is made of."""
        from curate.data.inplace import metadata_source

        entry = self.config["pools"][pool]
        if entry["source"] == "synthetic":
            return False
        return not self.in_place(pool) or metadata_source(entry) is not None

    def metadata_layout_inputs(self, pool: str) -> dict:
        """What a pool's metadata layout is made from: the fetched (or prepared) metadata, or the
        metadata folder of a download read in place (outside data_root, never written)."""
        return {"metadata": self.metadata_source(pool)}

    def metadata_layout_params(self, pool: str) -> dict:
        """How a pool's shards were cut from its metadata (`curate.data.metadata`): img2dataset's
        cut of each file (DataComp's download_upstream.py, read in place) or the workflow's split."""
        entry = self.config["pools"][pool]
        return {"samples_per_shard": entry["samples_per_shard"], "n_shards": entry["n_shards"]} | {
            "sharding": "per_file" if self.in_place(pool) else "concatenated"
        }

    def metadata_inputs(self, pool: str, chunk: str) -> dict:
        """A metadata scorer's files for one chunk: the chunk (its shards' parquets say what was
        downloaded) and, where the pool has metadata files, their layout."""
        inputs = {"chunk": self.chunk_input(pool, chunk)}
        if self.has_metadata(pool):
            inputs["layout"] = self.path("metadata_layout", pool=pool)
        return inputs

    def index_inputs(self, pool: str) -> dict:
        """A chunk index's inputs: the metadata layout when failed urls are retried (the metadata's
        face boxes and hashes go with them), else none (the download is read where it lies)."""
        entry = self.config["pools"][pool]
        return (
            {"layout": self.path("metadata_layout", pool=pool)}
            if entry["retry_failed"] and self.has_metadata(pool)
            else {}
        )

    def metadata_source(self, pool: str) -> str:
        """What a real pool's metadata is split from: the fetched DataComp parquet as it is, or
        the prepared (renamed, uid-made, sampled) parquet of other sources; for a download read in
        place, its own metadata folder."""
        entry = self.config["pools"][pool]
        if self.in_place(pool):
            from curate.data.inplace import metadata_source

            folder = metadata_source(entry)
            if folder is None:
                raise ValueError(f"pools.{pool}: an img2dataset folder has no metadata files")
            return str(folder)
        metadata = entry["metadata"]
        if entry["source"] == "datacomp" and not (
            metadata.get("columns") or metadata.get("uid_from") or metadata.get("sample")
        ):
            return self.path("metadata_fetched", pool=pool)
        return self.path("metadata_prepared", pool=pool)

    # ---- datasets ----------------------------------------------------------------------------
    def dataset_files(self, dataset: str) -> list[str]:
        """What a ``datasets`` entry's readers depend on: its folder (made by its rule), a curated
        set's folder, a pool's chunk inputs, or a group's members' files."""
        entry = self.config["datasets"][dataset]
        source = entry["source"]
        if source == "curated":
            return [self.path("curated_set", curated_set=entry["curated_set"])]
        if source == "pool":
            return self.chunk_inputs(entry["pool"])
        if source == "group":
            return [path for member in entry["members"] for path in self.dataset_files(member)]
        return [self.path("dataset", dataset=dataset)]

    def dataset_classes(self, dataset: str) -> str | None:
        """The evaluation task folder whose class names and templates a labelled set's labels are."""
        classes = self.config["datasets"][dataset].get("classes")
        return None if not classes else self.task_dir(classes["suite"], classes["task"])

    def labelled_sets(self, dataset: str) -> list[dict]:
        """The labelled sets a downstream dataset is (a group's members, else itself), each as
        ``{"name", "entry", "folder", "classes"}`` (its folder and class task folder)."""
        entry = self.config["datasets"][dataset]
        names = entry["members"] if entry["source"] == "group" else [dataset]
        return [
            {
                "name": name,
                "entry": self.config["datasets"][name],
                "folder": self.dataset_files(name)[0],
                "classes": self.dataset_classes(name),
            }
            for name in names
        ]

    def datasets_made_by(self, rule: str) -> str:
        """A wildcard pattern of the datasets whose folder ``rule`` makes."""
        from curate.data.datasets import built_here

        return names_pattern(n for n, e in self.config["datasets"].items() if built_here(e) == rule)

    def dataset_embeddings(self, dataset: str, scorer: str) -> str:
        return self.path("dataset_embeddings", dataset=dataset, scorer=scorer)

    def embed_dataset_inputs(self, dataset: str, scorer: str) -> dict:
        inputs = {"dataset": self.dataset_files(dataset), "model": self.scorer_model(scorer)}
        classes = self.dataset_classes(dataset)
        return inputs | ({"classes": classes} if classes else {})

    # ---- models and scorers ------------------------------------------------------------------
    def model_folder(self, model: str) -> str:
        """Where a ``models`` entry is loaded from: its fetched folder (a seeded random
        initialisation's is written there), the converted one of an original checkpoint with
        ``convert``, or, for a model this workflow trains, that run's model folder."""
        entry = self.config["models"][model]
        if entry["library"] == "trained":
            return self.path("model", pool=entry["pool"], selection=entry["selection"], recipe=entry["recipe"])
        stage = "converted_model" if entry.get("convert") else "pretrained_model"
        return self.path(stage, model=model)

    def models_of(self, *libraries: str) -> str:
        """A wildcard pattern of the ``models`` entries of these libraries."""
        return names_pattern(n for n, e in self.config.get("models", {}).items() if e["library"] in libraries)

    def scorer_model(self, scorer: str) -> str:
        """A trained scorer's folder, or the fetched (or converted) folder of a pretrained one's model."""
        entry = self.config["scorers"][scorer]
        if entry.get("source") == "pretrained":
            return self.model_folder(entry["model"])
        return self.path("trained_scorer", scorer=scorer)

    def captioner_model(self, captioner: str) -> str:
        """A captioner's folder: trained here, or its ``models`` entry's fetched (converted) one."""
        entry = self.config["captioners"][captioner]
        if is_trained(entry):
            return self.path("captioner_model", captioner=captioner)
        return self.model_folder(entry["model"])

    def sentence_encoder_model(self, encoder: str) -> str:
        """A sentence encoder's folder: trained here, or its ``models`` entry's."""
        entry = self.config["sentence_encoders"][encoder]
        if is_trained(entry):
            return self.path("sentence_encoder_model", sentence_encoder=encoder)
        return self.model_folder(entry["model"])

    def langid_model(self, langid: str) -> str | None:
        """A language detector's file (trained here) or fetched folder; None for one whose model
        ships inside its package (gcld3)."""
        entry = self.config["langid_models"][langid]
        if LANGID_MODELS.of(entry).spec.get("packaged"):
            return None
        if is_trained(entry):
            return self.path("langid_model", langid=langid)
        return self.model_folder(entry["model"])

    def image_encoder_model(self, encoder: str) -> str:
        """An image encoder's fetched ``models`` folder (``library: transformers``)."""
        return self.model_folder(self.config["image_encoders"][encoder]["model"])

    def image_embedding_files(self, pool: str, encoder: str) -> list[str]:
        """Every chunk's image embeddings of an image encoder: a CLIP scorer's own files, or the
        encoder's (written by ``embed_chunk``)."""
        owner = embeddings_owner(encoder, self.config["image_encoders"][encoder])
        return self.per_chunk("embeddings", pool, scorer=owner)

    def image_encoders_of(self, library: str) -> str:
        return names_pattern(n for n, e in self.config["image_encoders"].items() if e["library"] == library)

    def trained(self, section: str) -> str:
        """A wildcard pattern of the entries of ``captioners``, ``sentence_encoders`` or
        ``langid_models`` that are built here (``source: train``)."""
        return names_pattern(n for n, e in self.config[section].items() if is_trained(e))

    def scorer_inputs(self, scorer: str, pool: str, chunk: str) -> dict:
        entry = self.config["scorers"][scorer]
        return SCORER_KINDS.of(entry).inputs(self, scorer, entry, pool, chunk)

    def scorers_of_kind(self, kind: str) -> str:
        return names_pattern(n for n, e in self.config["scorers"].items() if e["library"] == kind)

    def score_group(self, kind: str) -> list[str]:
        """The scorers of ``kind`` that config ``score_group`` scores together (one job per chunk)."""
        return [s for s in self.config.get("score_group", []) if self.config["scorers"][s]["library"] == kind]

    def single_scorers_of_kind(self, kind: str) -> str:
        """A wildcard pattern of the scorers of ``kind`` scored alone (not in the score group)."""
        grouped = set(self.score_group(kind))
        return names_pattern(n for n, e in self.config["scorers"].items() if e["library"] == kind and n not in grouped)

    def group_outputs(self, kind: str) -> list[str]:
        """The files a group job writes, per scorer of the group in order: its scores, its report
        and (open_clip) its embeddings; ``{pool}`` and ``{chunk}`` left as wildcards."""
        names = ["scores", "score_report"] + (["embeddings"] if SCORER_KINDS[kind].spec.get("embeddings") else [])
        return [self.path(name, scorer=s) for s in self.score_group(kind) for name in names]

    def group_inputs(self, kind: str, pool: str, chunk: str) -> dict:
        """A group job reads the chunk's shards and every scorer's model, in the group's order."""
        return {
            "shards": self.chunk_input(pool, chunk),
            "models": [self.scorer_model(s) for s in self.score_group(kind)],
        }

    def group_batch_size(self, kind: str) -> int:
        """The smallest batch size of the group's scorers (every model sees the same batches)."""
        return min(self.batch_size(s) for s in self.score_group(kind))

    def metadata_scorers_with_features(self) -> str:
        return names_pattern(
            n for n, e in self.config["scorers"].items() if e["library"] == "metadata" and e.get("features")
        )

    def pools_in_place(self) -> str:
        return names_pattern(n for n in self.config["pools"] if self.in_place(n))

    def pools_with_metadata(self) -> str:
        return names_pattern(n for n in self.config["pools"] if self.has_metadata(n))

    def trained_scorers_of_kind(self, *kinds: str) -> str:
        """A wildcard pattern of the scorers of these kinds built here (``source: train``)."""
        return names_pattern(
            n for n, e in self.config["scorers"].items() if e["library"] in kinds and e.get("source") == "train"
        )

    def score_files(self, pool: str, scorer: str) -> list[str]:
        return self.per_chunk("scores", pool, scorer=scorer)

    def fused_files(self, pool: str, fusion: str) -> list[str]:
        return self.per_chunk("fused", pool, fusion=fusion)

    def classifier_inputs(self, scorer: str, pool: str) -> dict:
        """A classifier scorer learns its positives (a labelled set's images, or a curated
        set's pairs) against every chunk's embeddings by its CLIP."""
        entry = self.config["scorers"][scorer]
        clip = entry["embeddings"]
        if entry["method"] == "image_classifier":
            positives = self.dataset_embeddings(entry["target"], clip)
        else:
            positives = self.path("curated_embeddings", curated_set=entry["positives"], scorer=clip)
        return {"embeddings": self.per_chunk("embeddings", pool, scorer=clip), "positives": positives}

    def conversion_inputs(self, model: str) -> dict:
        """An original checkpoint's fetched folder and the model whose processor it takes."""
        return {
            "checkpoint": self.path("pretrained_model", model=model),
            "processor": self.model_folder(self.config["models"][model]["processor"]),
        }

    def batch_size(self, scorer: str) -> int:
        return self.config["scorers"][scorer]["batch_size"] or self.config["score_batch_size"]

    def score_contract(self, scorer: str) -> dict:
        """The exact columns and dtypes of a scorer's chunk files, from its kind's registry entry (a
        pool's ``precomputed`` scorer writes the same: `curate.workflow.config.check_pools`)."""
        return score_contract(self.config["scorers"][scorer])

    def fused_contract(self) -> dict:
        """The exact columns and dtypes of a fusion's fused chunk files."""
        return _contract([FUSED_COLUMN])

    def selection_score_contract(self, selection: str) -> dict | None:
        """The contract of the score files a selection reads (its ``scores`` input), None if it reads none."""
        source = score_source(self.config["selections"][selection])
        if source is None:
            return None
        kind, name = source
        return self.score_contract(name) if kind == "scorer" else self.fused_contract()

    # ---- fusions -----------------------------------------------------------------------------
    def fusion_columns(self, fusion: str) -> list[str]:
        """Each scorer's score column, in the fusion's scorer order."""
        return [score_column(self.config["scorers"][s]) for s in self.config["fusions"][fusion]["scorers"]]

    def fusion_contracts(self, fusion: str) -> list[dict]:
        """Each scorer's score-file contract, in the fusion's scorer order (as its files come)."""
        return [self.score_contract(s) for s in self.config["fusions"][fusion]["scorers"]]

    def fusion_score_files(self, pool: str, fusion: str, chunks: list[str] | None = None) -> list[str]:
        """Score files of a fusion, chunk-major: for each chunk, one file per scorer in order."""
        scorers = self.config["fusions"][fusion]["scorers"]
        chunks = self.chunks(pool) if chunks is None else chunks
        return [self.path("scores", pool=pool, scorer=s, chunk=c) for c in chunks for s in scorers]

    def fusion_stats_inputs(self, pool: str, fusion: str) -> dict:
        entry = self.config["fusions"][fusion]
        inputs = {"scores": self.fusion_score_files(pool, fusion)}
        extra = FUSIONS.of(entry).spec.get("stats_inputs")
        return inputs | (extra(self, pool, entry) if extra else {})

    def input_filter_evaluations(self, pool: str, fusion: dict) -> list[str]:
        """An IN-weighted fusion's inputs, one per scorer: the evaluation of the model trained on the
        subset filtered by that scorer alone (`curate.selection.fusion.input_filter_selection`), on
        the same pool, with the fusion's accuracy recipe and suite (shared runs: `runs_as`)."""
        from curate.selection.fusion import accuracy_recipe, input_filter_selection
        from curate.workflow.paper_rows import runs_as

        recipe, suite = accuracy_recipe(self.config, fusion), fusion["accuracy"]["suite"]
        paths = []
        for scorer in fusion["scorers"]:
            selection = runs_as(self.config, input_filter_selection(self.config, fusion, scorer))
            paths.append(self.path("evaluation", pool=pool, selection=selection, recipe=recipe, suite=suite))
        return paths

    def fuse_chunk_inputs(self, pool: str, fusion: str, chunk: str) -> dict:
        entry = self.config["fusions"][fusion]
        method = FUSIONS.of(entry)
        inputs = {
            "scores": self.fusion_score_files(pool, fusion, [chunk]),
            "stats": self.path("fusion_stats", pool=pool, fusion=fusion),
        }
        if method.spec.get("head"):  # trained on this pool, or on the one the fusion names
            inputs["mixer"] = self.path("mixer", pool=entry.get("head_pool") or pool, fusion=fusion)
        extra = method.spec.get("chunk_inputs")
        return inputs | (extra(self, pool, entry, chunk) if extra else {})

    def mixer_inputs(self, pool: str, fusion: str) -> dict:
        """What a trained fusion's head learns from: every chunk's scores and shards, the pool
        statistics, the reference CLIP (`reference_model`), the labelled downstream set(s) with
        their classes' task folders and, for E-FLYT, its feature extractor."""
        entry = self.config["fusions"][fusion]
        sets = self.labelled_sets(entry["downstream"]["dataset"])
        inputs = {
            "stats": self.path("fusion_stats", pool=pool, fusion=fusion),
            "scores": self.fusion_score_files(pool, fusion),
            "pool": self.chunk_inputs(pool),
            "downstream": self.dataset_files(entry["downstream"]["dataset"]),
            "classes": [s["classes"] for s in sets],
            "reference": self.reference_model(pool, entry["reference"]),
        }
        if FUSIONS.of(entry).head_input == "embeddings":
            # the scored uids; the head's features come from the frozen extractor (the scorer's
            # CLIP) on each batch's augmented images, as the FLYT code computes them
            inputs["embeddings"] = self.per_chunk("embeddings", pool, scorer=entry["scorers"][0])
            inputs["extractor"] = self.scorer_model(entry["scorers"][0])
        return inputs

    def reference_model(self, pool: str, reference: dict) -> str:
        """The folder a FLYT reference CLIP starts from: a scorer's model, a ``models`` entry's, or
        the model a selection's run trains on this pool."""
        if reference.get("scorer"):
            return self.scorer_model(reference["scorer"])
        if reference.get("model"):
            return self.model_folder(reference["model"])
        return self.path("model", pool=pool, selection=reference["selection"], recipe=reference["recipe"])

    def mixer_downstream(self, fusion: str) -> list[dict]:
        """A trained fusion's downstream sets as its training job reads them (`labelled_sets`)."""
        return self.labelled_sets(self.config["fusions"][fusion]["downstream"]["dataset"])

    def trained_fusions(self) -> str:
        return names_pattern(n for n, e in self.config["fusions"].items() if FUSIONS.of(e).spec.get("head"))

    # ---- selections --------------------------------------------------------------------------
    def selection_inputs(self, pool: str, selection: str) -> dict:
        """The files a selection reads, by role; only what its method needs."""
        entry = self.config["selections"][selection]
        return SELECTIONS.of(entry).inputs(self, pool, entry)

    def selection_params(self, selection: str) -> dict:
        """A selection's entry, resolved for this run (an SCS sampler's ``n: samples_seen`` becomes
        its recipe's count), the column its score source writes (each scorer's files hold the
        score under its own name: clip_score, sieve_score, ...; fused files ``score``), and what
        its method reads of other entries (a baseline's language detector)."""
        entry = resolve_selection(self.config, self.config["selections"][selection])
        extra = SELECTIONS.of(entry).spec.get("config_params")
        return (
            entry | {"score_column": score_column_of(self.config, entry)} | (extra(self.config, entry) if extra else {})
        )

    def strategy_scores(self, pool: str, selection: str) -> list[str]:
        return self.selection_inputs(pool, selection)["scores"]

    def reshard_inputs(self, pool: str, selection: str) -> dict:
        """What a selection adds to its reshard beside the subset: sample weights, new captions."""
        entry = self.config["selections"][selection]
        extra = SELECTIONS.of(entry).spec.get("reshard_inputs")
        return extra(self, pool, selection, entry) if extra else {}

    def subset_max_missing(self, selection: str) -> float | None:
        """The share of a subset's uids the pool may lack at reshard time: the selection's own
        ``max_missing`` (a subset made elsewhere), else None (the config's integrity setting)."""
        return self.config["selections"][selection].get("max_missing")

    def recaption_captions(self, pool: str, selection: str) -> list[str]:
        captioner = self.config["selections"][selection]["captioner"]
        return self.per_chunk("captions", pool, captioner=captioner)

    def selections_of(self, *methods: str) -> str:
        return names_pattern(n for n, e in self.config["selections"].items() if e["method"] in methods)

    # ---- training and evaluation -------------------------------------------------------------
    def recipes_trained_by(self, *rules: str) -> str:
        """A wildcard pattern of the recipes the training rules `rules` train."""
        return names_pattern(n for n, e in self.config["recipes"].items() if train_rule(e) in rules)

    def recipes_evaluated_by(self, rule: str) -> str:
        return names_pattern(n for n, e in self.config["recipes"].items() if TRAINERS.of(e).evaluate_rule == rule)

    def training_gpus(self, recipe: str) -> int:
        from curate.training.trainers import training_gpus

        return training_gpus(self.config["recipes"][recipe])

    def multi_node_resources(self, recipe: str) -> dict:
        """What a training job of a recipe on several nodes asks SLURM for (`curate.training.trainers`)."""
        from curate.training.trainers import multi_node_resources

        return multi_node_resources(self.config["recipes"][recipe])

    def suites_from(self, source: str) -> str:
        return names_pattern(n for n, s in self.config["suites"].items() if s["source"] == source)

    def task_dirs(self, suite: str) -> list[str]:
        """The suite's task folders, in the order of its ``tasks`` entry."""
        return [self.task_dir(suite, task) for task in self.config["suites"][suite]["tasks"]]

    def task_dir(self, suite: str, task: str) -> str:
        """One task's folder: generated (synthetic suites) or fetched (local ones)."""
        name = "local_task" if self.config["suites"][suite]["source"] == "local" else "synthetic_task"
        return self.path(name, suite=suite, task=task)

    def llava_base_inputs(self, recipe: str) -> dict:
        """A tiny LLaVA base is built from a curated set; a real one from two fetched ``models``
        entries, or from two folders put in place by hand (``local``)."""
        base = self.config["recipes"][recipe]["base"]
        if base["source"] == "train":
            return {"curated_set": self.path("curated_set", curated_set=base["curated_set"])}
        if base["source"] == "models":
            return {
                part: self.path("pretrained_model", model=base[part]) for part in ("vision_tower", "language_model")
            }
        return {"vision_tower": base["vision_tower"], "language_model": base["language_model"]}

    def tiny_blip_inputs(self, pool: str, selection: str, recipe: str) -> dict:
        """The reshard a tiny BLIP trains on and the curated set its tokenizer is fitted to."""
        tokenizer = self.config["recipes"][recipe]["tokenizer"]
        return {
            "reshard": self.path("reshard", pool=pool, selection=selection),
            "curated_set": self.path("curated_set", curated_set=tokenizer["curated_set"]),
        }

    def lavis_blip_inputs(self, pool: str, selection: str, recipe: str) -> dict:
        """The reshard LAVIS trains on and the fetched ``models`` its ViT and text model start from."""
        entry = self.config["recipes"][recipe]
        return {
            "reshard": self.path("reshard", pool=pool, selection=selection),
            "vision_init": self.path("pretrained_model", model=entry["vision_init"]),
            "text_init": self.path("pretrained_model", model=entry["text_init"]),
        }

    def blip_model(self, pool: str, selection: str, recipe: str) -> str:
        """The transformers-layout BLIP that evaluate_blip reads: the trained model, or for a
        LAVIS recipe its conversion (rule convert_blip_lavis)."""
        lavis = self.config["recipes"][recipe].get("library") == "lavis"
        return self.path("blip_converted" if lavis else "model", pool=pool, selection=selection, recipe=recipe)


__all__ = ["Workspace", "names_pattern", "FUSED_COLUMN"]
