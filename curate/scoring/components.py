"""What a ``captioners``, ``sentence_encoders`` or ``langid_models`` entry can be: the models that
Sieve and DataComp's baselines run besides the scorers.

Each section is completed by a registry (like the scorers, `curate.scoring.kinds`), chosen by the
entry's ``library``, and each entry is built here (``source: train``: a tiny model trained on the
synthetic world, for the tiny pool) or loaded from a ``models`` entry (``source: pretrained``: the
papers' own models, fetched once by ``fetch_model`` and converted where the entry says so).

- :data:`CAPTIONERS`: ``transformers``: a BLIP (``BlipForConditionalGeneration``) or GIT
  (``GitForCausalLM``) captioner sampling Sieve's captions (docs/algorithms.md §4.1).
- :data:`SENTENCE_ENCODERS`: ``sentence_transformers`` (all-MiniLM-L6-v2, or the tiny one),
  ``open_clip`` (a CLIP's text tower) and ``blip_itm`` (BLIP's text encoder), the three encoders
  Sieve's Table 4 compares (docs/algorithms.md §4.3).
- :data:`LANGID_MODELS`: ``fasttext`` (DataComp's ``lid.176.bin``, or the tiny detector) and
  ``gcld3`` (Google's CLD3, DataComp's LAION-2B filter; no file to fetch).

The workflow asks where each entry's model lives through the Workspace (`captioner_model`,
`sentence_encoder_model`, `langid_model`), which reads :func:`is_trained`. Nothing here imports
torch.
"""

from __future__ import annotations

from curate.registry import NAME, POSITIVE_INT, SEED, ConfigError, Registry, optional, required

_SOURCE = {"enum": ["train", "pretrained"]}
_PRETRAINED = {"model": required(NAME, "the `models` entry it loads", ref="models")}


def is_trained(entry: dict) -> bool:
    """Whether an entry's model is built here (``source: train``) rather than fetched."""
    return entry.get("source") == "train"


def _by_source(trained: dict, pretrained: dict):
    return lambda entry, where: trained if is_trained(entry) else pretrained


def _check_model(libraries: tuple, convert: str | None = None):
    """A check that a pretrained entry's ``models`` entry is of one of ``libraries`` (and, when it
    is an original checkpoint, converted with ``convert``)."""

    def check(config: dict, where: str, entry: dict) -> None:
        if is_trained(entry):
            return
        model = config["models"][entry["model"]]
        if model["library"] not in libraries:
            raise ConfigError(
                f"{where}.model: models.{entry['model']} is a {model['library']!r} model; "
                f"a {entry['library']} {where.split('.')[0][:-1]} loads {' or '.join(libraries)}"
            )
        if convert and model["library"] == "url" and model.get("convert") != convert:
            raise ConfigError(
                f"{where}.model: models.{entry['model']} is an original checkpoint without `convert: {convert}`"
            )

    return check


# --------------------------------------------------------------------------- captioners
CAPTIONERS = Registry("captioner", key="library", default="transformers")

CAPTIONERS.register(
    "transformers",
    doc="a BLIP or GIT captioner through transformers, sampling Sieve's captions (docs/algorithms.md §4.1)",
    params={
        "source": required(_SOURCE, "train: a tiny BLIP built here; pretrained: a `models` entry"),
        "seed": optional(SEED, 0, "seeds the training (source: train) and the caption sampling, per chunk and batch"),
        "image_size": optional(
            POSITIVE_INT, None, "CLIP-style preprocessing at this size; none: the processor saved with the model"
        ),
    },
    extra_params=_by_source(
        {
            "curated_set": required(NAME, "the curated set it is trained on", ref="curated_sets"),
            "steps": required({"type": "integer", "minimum": 0}, "training steps"),
            "batch_size": optional(POSITIVE_INT, 32),
            "lr": optional({"type": "number", "exclusiveMinimum": 0}, 0.003),
        },
        {
            **_PRETRAINED,
            "image_size": optional(
                POSITIVE_INT, 224, "CLIP-style preprocessing: shortest side, center crop (Sieve: 224)"
            ),
        },
    ),
    # a BLIP pretraining checkpoint converted to BlipForConditionalGeneration, or a Hub snapshot (GIT)
    check=_check_model(("url", "huggingface"), convert="blip_caption"),
)


# --------------------------------------------------------------------------- sentence encoders
SENTENCE_ENCODERS = Registry("sentence encoder", key="library", default="sentence_transformers")

SENTENCE_ENCODERS.register(
    "sentence_transformers",
    doc="a sentence-transformers model (all-MiniLM-L6-v2; the tiny one: BERT, mean pooling, L2 norm)",
    params={"source": required(_SOURCE, "train: built here on paraphrases; pretrained: a `models` entry")},
    extra_params=_by_source(
        {
            "n_pairs": required(POSITIVE_INT, "paraphrase pairs of the synthetic caption grammar"),
            "steps": required({"type": "integer", "minimum": 0}, "training steps"),
            "seed": required(SEED),
        },
        _PRETRAINED,
    ),
    check=_check_model(("huggingface",)),
)
SENTENCE_ENCODERS.register(
    "open_clip",
    doc="a CLIP's text tower: encode_text, L2-normalised (Sieve Table 4's CLIP)",
    params={"source": optional({"const": "pretrained"}, "pretrained"), **_PRETRAINED},
    check=_check_model(("open_clip",)),
)
SENTENCE_ENCODERS.register(
    "blip_itm",
    doc="BLIP's text encoder: the ITC projection of [CLS], L2-normalised, 35 tokens (Sieve Table 4's BLIP)",
    params={"source": optional({"const": "pretrained"}, "pretrained"), **_PRETRAINED},
    check=_check_model(("url", "huggingface"), convert="blip_itm"),
)


# --------------------------------------------------------------------------- language detectors
LANGID_MODELS = Registry("language detector", key="library", default="fasttext")

LANGID_MODELS.register(
    "fasttext",
    doc="fastText's top-1 label (DataComp's lid.176.bin, or a tiny detector trained on the synthetic world)",
    params={"source": required(_SOURCE, "train: fitted here to synthetic captions; pretrained: a `models` entry")},
    extra_params=_by_source(
        {
            "seed": required(SEED),
            "n_per_language": required(POSITIVE_INT, "captions per language"),
        },
        _PRETRAINED,
    ),
    check=_check_model(("url",)),
)
LANGID_MODELS.register(
    "gcld3",
    doc="Google's CLD3 (gcld3's NNetLanguageIdentifier), DataComp's LAION-2B filter; its model is in the package",
    params={
        "min_num_bytes": optional({"type": "integer", "minimum": 0}, 0, "DataComp: 0"),
        "max_num_bytes": optional(POSITIVE_INT, 1000, "DataComp: 1000 (CLD3 reads at most this many bytes)"),
    },
    packaged=True,  # nothing to fetch or train: the model ships inside the package
)


# --------------------------------------------------------------------------- image encoders
# Image embeddings that some selections cluster (Density-Based Pruning, docs/algorithms.md §11).
# Each encoder's per-chunk embeddings land at the `embeddings` path under its own name, as a CLIP
# scorer's do, so a selection reads either alike (`Workspace.image_embedding_files`).
IMAGE_ENCODERS = Registry("image encoder", key="library", default="transformers")

IMAGE_ENCODERS.register(
    "transformers",
    doc="a transformers vision backbone (DINOv2): its pooled [CLS] output, L2-normalised, per pool chunk",
    params={"source": optional({"const": "pretrained"}, "pretrained"), **_PRETRAINED},
    check=_check_model(("huggingface",)),
    rule="embed_chunk",
)
IMAGE_ENCODERS.register(
    "clip",
    doc="a CLIP scorer's image tower: the image embeddings its score rule already writes",
    params={"scorer": required(NAME, "the open_clip scorer whose image embeddings are read", ref="scorers")},
    check=lambda config, where, entry: _check_clip_scorer(config, where, entry),
)


def _check_clip_scorer(config: dict, where: str, entry: dict) -> None:
    if config["scorers"][entry["scorer"]]["library"] != "open_clip":
        raise ConfigError(f"{where}.scorer: {entry['scorer']!r} is not an open_clip scorer (no image embeddings)")


def embeddings_owner(name: str, entry: dict) -> str:
    """Under which name an image encoder's embeddings are written: its CLIP scorer's, or its own."""
    return entry["scorer"] if entry.get("library") == "clip" else name
