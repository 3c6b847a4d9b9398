"""Trainers: what a config ``recipes`` entry trains with (its ``trainer``; open_clip by default).

Each trainer is one entry of :data:`TRAINERS`: its parameters with their defaults, the rule that
trains with it and the rule that evaluates what it trained. Every trainer writes its model to the
same path (``models/{pool}/{selection}/{recipe}``); which rule does so is decided by the recipe's
trainer (and for BLIP its library), so rules never overlap.
"""

from __future__ import annotations

from curate.registry import NAME, POSITIVE_INT, SEED, ConfigError, Registry, optional, required

_NUMBER = {"type": "number"}
_RATE = {"type": "number", "exclusiveMinimum": 0}
_BETA = {"type": "number", "minimum": 0, "exclusiveMaximum": 1}

TRAINERS = Registry(
    "trainer",
    key="trainer",
    default="open_clip",
    common={
        "model": required(NAME, "the architecture (an open_clip name, or one of curate/model_configs)"),
        "epochs": required(POSITIVE_INT),
        "batch_size": required(POSITIVE_INT, "the global batch"),
        "lr": required(_RATE, "peak learning rate"),
        "wd": required({"type": "number", "minimum": 0}, "weight decay"),
        "device": optional({"enum": ["cpu", "cuda"]}, "cpu"),
        "precision": optional({"type": "string"}, "fp32", "torch autocast: fp32, amp, amp_bf16"),
        "world_size": optional(POSITIVE_INT, 1, "processes (GPUs) the global batch is split over"),
        "nodes": optional(POSITIVE_INT, 1, "nodes the processes are spread over"),
        "backend": optional(
            {"enum": ["nccl", "gloo", None]},
            None,
            "torch.distributed backend of a world_size > 1 run; null: nccl on cuda, gloo on cpu",
        ),
        "seed": optional(SEED, 0, "the training's seed"),
        "tiny_analogue": optional(
            NAME, None, "the recipe a `scale: tiny` paper row trains with instead", ref="recipes"
        ),
    },
)


def complete_recipe(recipe: dict, where: str = "recipe") -> dict:
    """A recipe with its trainer's defaults filled in (unknown keys raise, naming them)."""
    return TRAINERS.complete(recipe, where)


def dist_backend(recipe: dict) -> str:
    """The torch.distributed backend of a (complete) recipe: its ``backend``, else nccl on CUDA
    and gloo on CPU (what torchrun's processes on the rehearsal's 2 cores use)."""
    return recipe["backend"] or ("nccl" if recipe["device"] == "cuda" else "gloo")


def training_gpus(recipe: dict) -> int:
    """GPUs a training job asks the cluster for (a complete recipe): one per process of a CUDA
    recipe (torchrun starts ``world_size`` of them), none for a CPU one."""
    return int(recipe["world_size"]) if recipe["device"] == "cuda" else 0


TRAINERS.register(
    "open_clip",
    doc="open_clip_train, as DataComp trains (fixed samples seen, shards resampled with replacement)",
    params={
        "samples_seen": optional(POSITIVE_INT, None, "total samples seen (required when resampled)"),
        "warmup": required({"type": "integer", "minimum": 0}, "warm-up steps"),
        "beta1": required(_BETA),
        "beta2": required(_BETA),
        "eps": required(_RATE),
        "lr_scheduler": optional({"enum": ["cosine", "const", "const-cooldown"]}, "cosine"),
        "resampled": optional({"type": "boolean"}, True, "draw shards with replacement (DataComp)"),
        "accum_freq": optional(POSITIVE_INT, 1),
        "log_every_n_steps": optional(POSITIVE_INT, 100),
        "save_frequency": optional({"type": "integer", "minimum": 0}, 0),
        "grad_clip_norm": optional(_RATE, None),
        "extra_args": optional(
            {"type": "array", "items": {"type": "string"}}, [], "passed to open_clip_train verbatim"
        ),
        "workers": optional({"type": "integer", "minimum": 0}, 0, "data loader workers per process"),
    },
    check=lambda config, where, entry: _check_samples_seen(where, entry),
    train_rule="train_clip",
    evaluate_rule="evaluate_model",
)


def _check_one_process(where: str, recipe: dict) -> None:
    """curate's own loops (weighted CLIP, LLaVA) run one process: a recipe asking for more would
    silently train on one GPU with another batch per device than it says."""
    if recipe["world_size"] != 1 or recipe["nodes"] != 1:
        raise ConfigError(
            f"{where}.world_size: trainer {recipe['trainer']!r} runs one process (world_size 1, nodes 1), "
            f"not {recipe['world_size']} on {recipe['nodes']} node(s)"
        )


def _check_samples_seen(where: str, recipe: dict) -> None:
    if recipe["resampled"] and not recipe["samples_seen"]:
        raise ConfigError(f"{where}.samples_seen: a resampled recipe needs its total samples seen")


TRAINERS.register(
    "weighted_clip",
    doc="curate's CLIP loop with per-sample loss weights (MoS's sample weighting)",
    params={
        "warmup_epochs": required({"type": "number", "minimum": 0}),
        "beta1": required(_BETA),
        "beta2": required(_BETA),
        "eps": required(_RATE),
        "workers": optional({"type": "integer", "minimum": 0}, 0, "data loader workers"),
        "shuffle_buffer": optional({"type": "integer", "minimum": 0}, 1000),
    },
    check=lambda config, where, entry: _check_one_process(where, entry),
    train_rule="train_weighted_clip",
    evaluate_rule="evaluate_model",
)

_LLAVA_BASE = {
    "type": "object",
    "required": ["source"],
    "additionalProperties": False,
    "properties": {
        "source": {"enum": ["train", "models", "local"]},
        "curated_set": NAME,
        "seed": {**SEED, "default": 0},
        "lm_steps": {"type": "integer", "minimum": 0},
        "vision_tower": {"type": "string"},
        "language_model": {"type": "string"},
    },
    "allOf": [
        {
            "if": {"properties": {"source": {"const": "train"}}},
            "then": {"required": ["curated_set", "seed", "lm_steps"]},
            "else": {"required": ["vision_tower", "language_model"]},
        }
    ],
}


def _check_llava(config: dict, where: str, recipe: dict) -> None:
    _check_one_process(where, recipe)
    base = recipe["base"]
    if base["source"] == "models":
        for part in ("vision_tower", "language_model"):
            if base[part] not in config.get("models", {}):
                raise ConfigError(f"{where}.base.{part}: {base[part]!r} is not an entry of `models`")
    if base["source"] == "train" and base["curated_set"] not in config.get("curated_sets", {}):
        raise ConfigError(f"{where}.base.curated_set: {base['curated_set']!r} is not an entry of `curated_sets`")


TRAINERS.register(
    "llava",
    doc="LLaVA projector pretraining with per-sample loss weights (MoS Table 1)",
    params={
        "base": required(_LLAVA_BASE, "the LLaVA before pretraining: built here, from two `models`, or local folders"),
        "warmup_ratio": required({"type": "number", "minimum": 0, "maximum": 1}),
        "max_text_tokens": optional(POSITIVE_INT, 64),
        "micro_batch_size": optional(POSITIVE_INT, None, "per step (default: the whole batch)"),
        "shuffle_buffer": optional({"type": "integer", "minimum": 0}, 1000),
    },
    check=_check_llava,
    train_rule="train_llava",
    evaluate_rule="evaluate_llava",
)

_BLIP_COMMON = {
    "library": required(
        {"enum": ["lavis", "transformers"]},
        "lavis: salesforce-lavis's blip_pretrain in its own env; transformers: a tiny BLIP",
    ),
    "lr_decay_rate": required(
        {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "the lr is multiplied by this every epoch (LAVIS's step_lr)",
    ),
    "warmup": optional({"type": "integer", "minimum": 0}, 0, "warm-up steps"),
    "warmup_lr": optional({"type": "number", "minimum": 0}, 1e-6),
    "min_lr": optional({"type": "number", "minimum": 0}, 1e-6),
}
_BLIP_LIBRARIES = {
    "lavis": {
        "model_type": required({"type": "string"}, "the LAVIS model type (base, large)"),
        "world_size": required(POSITIVE_INT, "GPUs the global batch is split over (MoS: 16 V100s)"),
        "vision_init": required(
            NAME,
            "the `models` entry of the ViT's initialisation (LAVIS's: DeiT-B/16's ImageNet .pth); its width, "
            "depth and patch size are read off the checkpoint",
            ref="models",
        ),
        "text_init": required(
            NAME,
            "the `models` entry of the text encoder/decoder's initialisation and tokenizer (LAVIS's: "
            "bert-base-uncased, a Hub snapshot); its sizes are read off its config.json",
            ref="models",
        ),
        "image_size": optional({"type": "integer", "minimum": 8}, 224),
        "queue_size": optional(POSITIVE_INT, 57600, "must hold whole global batches"),
        "alpha": optional({"type": "number", "minimum": 0, "maximum": 1}, 0.4, "momentum distillation weight"),
        "workers": optional({"type": "integer", "minimum": 0}, 4, "data loader workers per process"),
    },
    "transformers": {
        "tokenizer": required(
            {
                "type": "object",
                "required": ["curated_set"],
                "additionalProperties": False,
                "properties": {"curated_set": NAME, "vocab_size": {"type": "integer", "minimum": 16, "default": 400}},
            },
            "the WordPiece tokenizer is fitted to this curated set's captions",
        ),
        "arch": optional(
            {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "hidden": POSITIVE_INT,
                    "layers": POSITIVE_INT,
                    "image_size": POSITIVE_INT,
                    "patch_size": POSITIVE_INT,
                },
            },
            {},
            "the tiny BLIP's sizes",
        ),
        "shuffle_buffer": optional({"type": "integer", "minimum": 0}, 1000),
    },
}


def _blip_params(recipe: dict, where: str) -> dict:
    library = recipe.get("library")
    if library not in _BLIP_LIBRARIES:
        raise ConfigError(
            f"{where}.library: a blip recipe's library is one of {', '.join(_BLIP_LIBRARIES)}, not {library!r}"
        )
    return _BLIP_LIBRARIES[library]


def _check_blip(config: dict, where: str, recipe: dict) -> None:
    if recipe["library"] == "transformers":
        _check_one_process(where, recipe)
        curated_set = recipe["tokenizer"]["curated_set"]
        if curated_set not in config.get("curated_sets", {}):
            raise ConfigError(f"{where}.tokenizer.curated_set: {curated_set!r} is not an entry of `curated_sets`")


TRAINERS.register(
    "blip",
    doc="BLIP pretraining (ITC + ITM + LM) with per-sample loss weights (MoS Table 3)",
    params=_BLIP_COMMON,
    extra_params=_blip_params,
    check=_check_blip,
    train_rule=lambda recipe: "train_blip_lavis" if recipe["library"] == "lavis" else "train_blip",
    evaluate_rule="evaluate_blip",
)


def train_rule(recipe: dict) -> str:
    """The rule that trains a (completed) recipe."""
    rule = TRAINERS.of(recipe, "recipe").train_rule
    return rule(recipe) if callable(rule) else rule
