"""Scorer kinds: what a config ``scorers`` entry can be (its ``library``).

Each kind is one entry of :data:`SCORER_KINDS`: its parameters, the rule that scores a chunk with
it (and its env), the files that rule reads (``inputs``), and the columns it writes (``columns``:
the float32 scores, ``text_columns``: strings riding along). Every kind's chunk files land at the
same path (``scores/{pool}/{scorer}/{chunk}.parquet``), so selections and fusions read any scorer
alike; the score itself is in the kind's :func:`score_column`. The columns are the files'
contract (:func:`score_contract`): its writer writes exactly them, its readers check them.

Adding a kind: its module (the scoring code), its rule and script, its env, and one entry here.
"""

from __future__ import annotations

from curate.data.scorefiles import score_contract as _contract
from curate.registry import NAME, POSITIVE_INT, SEED, ConfigError, Registry, optional, required

SCORER_KINDS = Registry(
    "scorer kind",
    key="library",
    common={
        "batch_size": optional(POSITIVE_INT, None, "samples per scoring batch (default: the config's score_batch_size)")
    },
)

#: The column of an image-text matching scorer, by its head.
ITM_COLUMNS = {"itm": "itm_score", "itc": "itc_score"}

#: The model libraries a pretrained scorer of each kind loads (a CLIP: fetched, trained by this
#: workflow, or a seeded random initialisation).
MODEL_LIBRARIES = {"open_clip": ("open_clip", "trained", "random"), "blip_itm": ("huggingface", "url")}


def score_column(scorer: dict) -> str:
    """The column of a scorer's chunk files that holds its score."""
    return SCORER_KINDS.of(scorer, "scorer").score_column(scorer)


def score_columns(scorer: dict) -> list[str]:
    """Every numeric column a scorer's chunk files hold (the score first)."""
    return SCORER_KINDS.of(scorer, "scorer").columns(scorer)


def text_columns(scorer: dict) -> list[str]:
    """The string columns a scorer's chunk files hold after its scores (Sieve's best caption)."""
    columns = SCORER_KINDS.of(scorer, "scorer").spec.get("text_columns")
    return list(columns(scorer)) if columns else []


def score_contract(scorer: dict) -> dict[str, str]:
    """The exact columns and dtypes of a scorer's chunk files (`curate.data.scorefiles.score_contract`):
    ``uid``, its score columns, its text columns."""
    return _contract(score_columns(scorer), text_columns(scorer))


def _check_pretrained(config: dict, where: str, entry: dict) -> None:
    if entry.get("source") != "pretrained":
        return
    model = config["models"][entry["model"]]
    if model["library"] not in MODEL_LIBRARIES[entry["library"]]:
        raise ConfigError(
            f"{where}.library: {entry['library']!r}, but models.{entry['model']} is a {model['library']!r} model"
        )
    if entry["library"] == "blip_itm" and model["library"] == "url" and model.get("convert") != "blip_itm":
        raise ConfigError(
            f"{where}.model: models.{entry['model']} is an original checkpoint without "
            "`convert: blip_itm`, which the ITM scorer cannot load"
        )


def _check_trained_itm(config: dict, where: str, entry: dict) -> None:
    if entry.get("source") != "train":
        return
    recipe = config["recipes"][entry["recipe"]]
    if recipe.get("trainer") != "blip" or recipe.get("library") != "transformers" or entry["head"] != "itm":
        raise ConfigError(
            f"{where}: a trained ITM scorer is a tiny BLIP (a recipe of trainer blip, library transformers) "
            f"scored with its itm head; recipes.{entry['recipe']} is not one, or head is not itm"
        )


def _model_inputs(ws, scorer: str, entry: dict, pool: str, chunk: str) -> dict:
    return {"shards": ws.chunk_input(pool, chunk), "model": ws.scorer_model(scorer)}


_TRAINED = {
    "arch": required(NAME, "the open_clip architecture (curate/model_configs)"),
    "curated_set": required(NAME, "the curated set it is trained on", ref="curated_sets"),
    "recipe": required(NAME, "the recipe it is trained with", ref="recipes"),
    "seed": required(SEED),
}
_PRETRAINED = {"model": required(NAME, "the `models` entry it loads", ref="models")}

SCORER_KINDS.register(
    "open_clip",
    doc="CLIP score: the cosine of an open_clip model's image and text embeddings",
    params={"source": required({"enum": ["train", "pretrained"]}, "train: built here; pretrained: a `models` entry")},
    extra_params=lambda entry, where: _TRAINED if entry.get("source") == "train" else _PRETRAINED,
    check=_check_pretrained,
    rule="score_chunk",
    inputs=_model_inputs,
    embeddings=True,
    columns=lambda entry: ["clip_score"],
    score_column=lambda entry: "clip_score",
)

#: A BLIP ITM scorer built here: a tiny BLIP (`recipe`: a blip recipe of library transformers)
#: pretrained on a curated set, its retrieval model and processor saved as a transformers folder.
_TRAINED_ITM = {
    "curated_set": required(NAME, "the curated set it is trained on", ref="curated_sets"),
    "recipe": required(NAME, "the tiny BLIP recipe it is trained with", ref="recipes"),
    "seed": required(SEED),
}

SCORER_KINDS.register(
    "blip_itm",
    doc="BLIP / BLIP-2 image-text matching through transformers (ITM head or ITC cosine)",
    params={
        "source": optional(
            {"enum": ["pretrained", "train"]},
            "pretrained",
            "train: a tiny BLIP built here; pretrained: a `models` entry",
        ),
        "head": required(
            {"enum": list(ITM_COLUMNS)},
            "itm: softmax of the ITM head, class 1; itc: the contrastive cosine (BLIP-2: max over queries)",
        ),
    },
    extra_params=lambda entry, where: _TRAINED_ITM if entry.get("source") == "train" else _PRETRAINED,
    check=lambda config, where, entry: (
        _check_pretrained(config, where, entry) or _check_trained_itm(config, where, entry)
    ),
    rule="itm_score_chunk",
    inputs=_model_inputs,
    columns=lambda entry: [ITM_COLUMNS[entry["head"]]],
    score_column=lambda entry: ITM_COLUMNS[entry["head"]],
)


def _sieve_inputs(ws, scorer: str, entry: dict, pool: str, chunk: str) -> dict:
    return {
        "captions": ws.path("captions", pool=pool, captioner=entry["captioner"], chunk=chunk),
        "sentence_encoder": ws.sentence_encoder_model(entry["sentence_encoder"]),
    }


SCORER_KINDS.register(
    "sieve",
    doc="Sieve: the best of a captioner's captions against the alt-text, by a sentence encoder",
    params={
        "captioner": required(NAME, "whose captions are compared", ref="captioners"),
        "sentence_encoder": required(NAME, "the sentence encoder", ref="sentence_encoders"),
        "num_captions": optional(
            POSITIVE_INT, None, "compare only the first k of the captioner's captions (Sieve Table 5); none: all"
        ),
    },
    rule="sieve_score_chunk",
    inputs=_sieve_inputs,
    columns=lambda entry: ["sieve_score", "sieve_mean"],
    text_columns=lambda entry: ["best_caption"],
    score_column=lambda entry: "sieve_score",
)

#: s-CLIPLoss's defaults (Wang et al.'s code): a random batch of this size inside each chunk, and
#: the temperature of the CLIP loss it normalises by.
S_CLIP_LOSS_BATCH_SIZE = 32768
S_CLIP_LOSS_TEMPERATURE = 0.01

#: Embedding scores whose classifier is trained on the pool's embeddings first.
CLASSIFIER_METHODS = ("image_classifier", "image_text_classifier")

_CLASSIFIER_TRAINING = {
    "steps": optional(POSITIVE_INT, None, "training steps (FLYT: 40 000)"),
    "lr": optional({"type": "number", "exclusiveMinimum": 0}, 0.01, "peak learning rate"),
    "warmup_steps": optional({"type": "integer", "minimum": 0}, 500),
    "weight_decay": optional({"type": "number", "minimum": 0}, 0.0),
    "batch_size": optional(POSITIVE_INT, 256),
}
_EMBEDDING_METHODS = {
    "s_clip_loss": {
        "batch_size": optional(POSITIVE_INT, S_CLIP_LOSS_BATCH_SIZE, "random batches drawn inside each chunk"),
        "temperature": optional({"type": "number", "exclusiveMinimum": 0}, S_CLIP_LOSS_TEMPERATURE),
        "n_repeats": optional(POSITIVE_INT, 1),
    },
    "normsim_inf": {
        "target": required(
            NAME, "the labelled set whose images are the target (FLYT: ImageNet's train)", ref="datasets"
        )
    },
    "image_classifier": {
        "target": required(NAME, "the labelled set whose images are the positives", ref="datasets"),
        **_CLASSIFIER_TRAINING,
    },
    "image_text_classifier": {
        "positives": required(NAME, "the curated set whose pairs are the positives", ref="curated_sets"),
        **_CLASSIFIER_TRAINING,
    },
    "linear_probe": {
        "model": required(
            NAME, "the `models` entry of a trained linear classifier (torch nn.Linear weights)", ref="models"
        ),
        "features": required(
            {"enum": ["image", "image_text"]}, "what it classifies: image embeddings, or [image | text] ones"
        ),
    },
    "flyt_head": {
        "model": required(NAME, "the `models` entry of FLYT's released E-FLYT scoring model", ref="models"),
    },
}


def _embedding_params(entry: dict, where: str) -> dict:
    method = entry.get("method")
    if method not in _EMBEDDING_METHODS:
        raise ConfigError(
            f"{where}.method: unknown embedding score {method!r} (known: {', '.join(_EMBEDDING_METHODS)})"
        )
    return _EMBEDDING_METHODS[method]


def _check_embeddings(config: dict, where: str, entry: dict) -> None:
    source = config["scorers"][entry["embeddings"]]
    if source["library"] == "metadata" and source.get("features") and entry["method"] == "s_clip_loss":
        return  # s-CLIPLoss reads the chunks' embeddings only; the others embed a target set with the CLIP
    if source["library"] != "open_clip":
        raise ConfigError(
            f"{where}.embeddings: {entry['embeddings']!r} is not a CLIP scorer (a metadata scorer's features serve "
            "s_clip_loss only; for the others name the CLIP, and a pool's `precomputed` reads its features there)"
        )
    target = entry.get("target")
    if target is not None and config["datasets"][target]["source"] in ("curated", "pool", "group"):
        raise ConfigError(f"{where}.target: {target!r} is not one labelled set")
    if entry["method"] in ("linear_probe", "flyt_head") and config["models"][entry["model"]]["library"] != "url":
        raise ConfigError(f"{where}.model: {entry['model']!r} is not a weights file (`library: url`)")


def _embedding_inputs(ws, scorer: str, entry: dict, pool: str, chunk: str) -> dict:
    clip = entry["embeddings"]
    inputs = {"embeddings": ws.path("embeddings", pool=pool, scorer=clip, chunk=chunk)}
    if entry["method"] == "normsim_inf":
        inputs["target"] = ws.dataset_embeddings(entry["target"], clip)
    if entry["method"] in CLASSIFIER_METHODS:
        inputs["classifier"] = ws.path("classifier", pool=pool, scorer=scorer)
    if entry["method"] in ("linear_probe", "flyt_head"):
        inputs["model"] = ws.model_folder(entry["model"])
    return inputs


SCORER_KINDS.register(
    "embedding",
    doc="a score from a CLIP scorer's chunk embeddings: s-CLIPLoss, NormSim-inf, FLYT's linear classifiers "
    "(trained here or released), FLYT's released E-FLYT scoring model",
    params={
        "method": required({"enum": list(_EMBEDDING_METHODS)}, "which embedding score"),
        "embeddings": required(NAME, "the CLIP scorer whose embeddings are read", ref="scorers"),
        "seed": optional(SEED, 0, "random batches (s-CLIPLoss) and classifier training"),
    },
    extra_params=_embedding_params,
    check=_check_embeddings,
    rule="embedding_score_chunk",
    inputs=_embedding_inputs,
    columns=lambda entry: [entry["method"]],
    score_column=lambda entry: entry["method"],
)


# ---- HYPE (docs/algorithms.md §6.7; curate.scoring.hype) ------------------------------------
#: HYPE's three scores of a pair: the columns of a ``hyperbolic_clip`` scorer's chunk files.
HYPE_COLUMNS = ("neg_lorentzian_distance", "image_specificity", "text_specificity")

_HYPE_TRAINED = {
    "arch": required(
        NAME,
        "the open_clip architecture (curate/model_configs) of the towers; its widths multiples of 64, as "
        "the release's weights format implies 64-wide attention heads",
    ),
    "curated_set": required(NAME, "the curated set it is trained on (MERU's loss)", ref="curated_sets"),
    "recipe": required(NAME, "the recipe it is trained with", ref="recipes"),
    "seed": required(SEED),
    "reference_size": optional(POSITIVE_INT, 256, "pairs of the curated set encoded as its reference set"),
}
_HYPE_PRETRAINED = {
    "model": required(NAME, "the `models` entry of the released weights (ckpt.pt)", ref="models"),
    "reference": required(NAME, "the `models` entry of the released reference set (reference.pt)", ref="models"),
}


def _check_hype(config: dict, where: str, entry: dict) -> None:
    if entry["source"] != "pretrained":
        return
    for key in ("model", "reference"):
        model = config["models"][entry[key]]
        if model["library"] != "url":
            raise ConfigError(
                f"{where}.{key}: models.{entry[key]} is a {model['library']!r} model; HYPE's files are plain "
                "downloads (`library: url`)"
            )


def _hype_inputs(ws, scorer: str, entry: dict, pool: str, chunk: str) -> dict:
    inputs = {"shards": ws.chunk_input(pool, chunk)}
    if entry["source"] == "pretrained":
        return inputs | {"model": ws.model_folder(entry["model"]), "reference": ws.model_folder(entry["reference"])}
    return inputs | {"model": ws.path("trained_scorer", scorer=scorer)}


SCORER_KINDS.register(
    "hyperbolic_clip",
    doc="HYPE: a hyperbolic (MERU) CLIP's -d_L, image and text specificity of each pair",
    params={
        "source": required(
            {"enum": ["train", "pretrained"]}, "train: a tiny one built here; pretrained: the released weights"
        )
    },
    extra_params=lambda entry, where: _HYPE_TRAINED if entry.get("source") == "train" else _HYPE_PRETRAINED,
    check=_check_hype,
    rule="hype_score_chunk",
    inputs=_hype_inputs,
    columns=lambda entry: list(HYPE_COLUMNS),
    score_column=lambda entry: HYPE_COLUMNS[0],
)


def _check_column(config: dict, where: str, entry: dict) -> None:
    parent = config["scorers"][entry["scorer"]]
    if parent["library"] == "column":
        raise ConfigError(f"{where}.scorer: {entry['scorer']!r} is itself a column of another scorer; name that one")
    columns = SCORER_KINDS.of(parent, f"scorers.{entry['scorer']}").columns(parent)
    if entry["column"] not in columns:
        raise ConfigError(
            f"{where}.column: {entry['column']!r} is not a column of scorers.{entry['scorer']} "
            f"(its columns: {', '.join(columns)})"
        )


SCORER_KINDS.register(
    "column",
    doc="one column of another scorer's chunk files as a scorer of its own (HYPE's scores as FLYT's inputs)",
    params={
        "scorer": required(NAME, "the scorer whose chunk files hold the column", ref="scorers"),
        "column": required({"type": "string"}, "the column, one of that scorer's numeric columns"),
    },
    check=_check_column,
    rule="column_score_chunk",
    inputs=lambda ws, scorer, entry, pool, chunk: {
        "scores": ws.path("scores", pool=pool, scorer=entry["scorer"], chunk=chunk)
    },
    columns=lambda entry: [entry["column"]],
    score_column=lambda entry: entry["column"],
)


def _metadata_inputs(ws, scorer: str, entry: dict, pool: str, chunk: str) -> dict:
    return ws.metadata_inputs(pool, chunk)


def _metadata_column(entry: dict) -> str:
    return entry["score_column"] or entry["column"]


SCORER_KINDS.register(
    "metadata",
    doc="a column of the pool's metadata read as the score (DataComp ships OpenAI B/32 and L/14 cosines), "
    "and its .npz features as the embeddings: no model runs",
    params={
        "column": required(
            {"type": "string", "minLength": 1},
            "the metadata column read (DataComp: clip_l14_similarity_score, clip_b32_similarity_score; or any)",
        ),
        "features": optional(
            {"type": ["string", "null"]},
            None,
            "the .npz features read as its embeddings (DataComp: l14 -> l14_img, l14_txt; b32); null: none",
        ),
        "score_column": optional(
            {"type": ["string", "null"]},
            None,
            "the column its score files hold (default: `column`); clip_score where it stands for a CLIP "
            "scorer in a pool's `precomputed`",
        ),
    },
    rule="metadata_score_chunk",
    inputs=_metadata_inputs,
    columns=lambda entry: [_metadata_column(entry)],
    score_column=_metadata_column,
)
