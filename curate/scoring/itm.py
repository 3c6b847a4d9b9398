"""Image-text matching scores of BLIP and BLIP-2 (MoS's BLIP and BLIP-2 scorers, docs/algorithms.md §5)
through transformers' ``BlipForImageTextRetrieval`` and ``Blip2ForImageTextRetrieval``.

One code path for the real and the tiny models: a folder holding the model and its processor
(``save_pretrained`` layout: the Hub's ``Salesforce/blip-itm-*`` and ``Salesforce/blip2-itm-*``
snapshots, an original BLIP checkpoint converted by `convert_blip_checkpoint`, or a tiny model a
test builds) is loaded by `load_itm_model`; the model's ``model_type`` says which family it is.

Heads (a scorer's ``head``), each giving one float per pair:

- ``itm``: the image-text matching head, ``softmax(logits)[:, 1]`` (the "match" class), in [0, 1].
  BLIP: the text encoder cross-attends to the ViT tokens and the head reads the first token; as
  the original BLIP / LAVIS ITM code does, that first token is ``[ENC]`` (``[CLS]`` replaced), text
  truncated to 35 tokens. BLIP-2: the Q-Former reads the query tokens and the text together, the
  head's logits are averaged over the query tokens; text truncated to 32 tokens (LAVIS).
- ``itc``: the contrastive similarity, a cosine in [-1, 1]. BLIP: projected ViT ``[CLS]`` against
  the projected text ``[CLS]``. BLIP-2: the maximum over the query tokens of the cosine between
  each projected query output and the projected text ``[CLS]`` (docs/algorithms.md §5).

Scores go to ``scores/{pool}/{scorer}/{chunk}.parquet`` under the column ``itm_score`` or
``itc_score`` (`curate.workflow.paths.score_column`), in the format of the CLIP scores
(`curate.scoring.clip_score.save_scores`).

Original checkpoints (``library: url`` models with ``convert: blip_itm`` or ``blip_caption``):
salesforce/BLIP's ``model_base_14M.pth``, ``model_base.pth`` and ``model_large.pth`` hold
``{'model': state_dict}`` of BLIP's pretraining model (ViT + BERT text encoder with its ITC
projections and ITM head, the text decoder, plus momentum encoders and the queues).
`convert_blip_checkpoint` renames the keys as transformers' ``convert_blip_original_pytorch_to_hf.py``
does (`blip_key_to_transformers`), keeps those of the target model - ``BlipForImageTextRetrieval``
(``blip_itm``: ViT, text encoder, projections, ITM head) or ``BlipForConditionalGeneration``
(``blip_caption``: ViT and text decoder, Sieve's captioner) - and lists the others in the record,
reads the architecture off the tensors' shapes (image size from the position embeddings: 224 for
the pretraining checkpoints), and saves model + processor (tokenizer and image processor of a Hub
BLIP folder, resized to the checkpoint's image size) in the ``save_pretrained`` layout.

BLIP-2 ViT-L/14 pretrain (LAVIS ``blip2_pretrained_vitL.pth``) cannot be converted:
LAVIS's CLIP ViT-L/14 applies a LayerNorm to the patch embeddings before the first block
(``ln_pre``), which transformers' ``Blip2VisionModel`` has no module for, and LAVIS saves only the
trained Q-Former in that file (the frozen ViT comes from a separate ``clip_vit_L.pth``).
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from curate.scoring.kinds import ITM_COLUMNS

log = logging.getLogger(__name__)

HEADS = ("itm", "itc")
#: The transformers ``model_type`` of each family.
FAMILIES = {"blip": "blip", "blip-2": "blip2"}
#: Text length limits of the original code: BLIP's ITM (35 tokens), LAVIS's BLIP-2 (32).
MAX_TEXT_TOKENS = {"blip": 35, "blip2": 32}
ENC_TOKEN = "[ENC]"
CONVERSION_RECORD = "conversion.json"


def score_column_of(head: str) -> str:
    """The score column of an ITM scorer with this head (`curate.scoring.kinds.ITM_COLUMNS`)."""
    if head not in HEADS:
        raise ValueError(f"unknown ITM head {head!r}; expected one of {HEADS}")
    return ITM_COLUMNS[head]


def model_family(folder) -> str:
    """``blip`` or ``blip2``, from the folder's ``config.json``."""
    config = Path(folder) / "config.json"
    if not config.is_file():
        raise FileNotFoundError(
            f"{folder}: no config.json (not a transformers model folder; an original "
            "checkpoint must be converted first, models.<name>.convert)"
        )
    model_type = json.loads(config.read_text()).get("model_type")
    if model_type not in FAMILIES:
        raise ValueError(f"{config}: model_type {model_type!r} is not an image-text matching family {sorted(FAMILIES)}")
    return FAMILIES[model_type]


def load_itm_model(folder, device: str = "cpu"):
    """``(model, processor, family)`` of a BLIP / BLIP-2 ITM folder (``from_pretrained``), in
    eval mode on ``device``."""
    family = model_family(folder)
    if family == "blip":
        from transformers import BlipForImageTextRetrieval as Model
        from transformers import BlipProcessor as Processor
    else:
        from transformers import Blip2ForImageTextRetrieval as Model
        from transformers import Blip2Processor as Processor
    model = Model.from_pretrained(str(folder)).to(device).eval()
    processor = Processor.from_pretrained(str(folder))
    return model, processor, family


def enc_token_id(tokenizer, text_config) -> int:
    """The id of BLIP's ``[ENC]`` token. BLIP's tokenizer is BERT's + ``[DEC]`` (bos) + ``[ENC]``,
    in that order; a saved tokenizer that does not list ``[ENC]`` (the Hub's BLIP processors may
    not: transformers' BLIP does not use it, huggingface/transformers#22732) gets the id after
    ``[DEC]`` (the tokenizer's, else the text config's bos), as BLIP's embeddings have it."""
    vocab = tokenizer.get_vocab()
    if ENC_TOKEN in vocab:
        token_id = vocab[ENC_TOKEN]
    else:
        token_id = vocab.get("[DEC]", text_config.bos_token_id) + 1
        if token_id in set(vocab.values()):
            raise ValueError(f"the tokenizer has no {ENC_TOKEN} and id {token_id} after [DEC] is another token")
    if token_id >= text_config.vocab_size:
        raise ValueError(f"{ENC_TOKEN} has id {token_id}, outside the text model's {text_config.vocab_size} embeddings")
    return int(token_id)


def blip_inputs(processor, images, texts, head: str, text_config) -> dict:
    """BLIP's pixel values, input ids and attention mask; ``[ENC]`` first for the ITM head."""
    pixel_values = processor.image_processor(images, return_tensors="pt")["pixel_values"]
    text = processor.tokenizer(
        list(texts), padding="longest", truncation=True, max_length=MAX_TEXT_TOKENS["blip"], return_tensors="pt"
    )
    input_ids = text["input_ids"].clone()
    if head == "itm":
        input_ids[:, 0] = enc_token_id(processor.tokenizer, text_config)
    return {"pixel_values": pixel_values, "input_ids": input_ids, "attention_mask": text["attention_mask"]}


def blip2_inputs(processor, images, texts, config) -> dict:
    """BLIP-2's pixel values, input ids and attention mask; with ``image_token_index`` set in the
    model's config, the ids start with one image token per query (the model drops them again)."""
    import torch

    pixel_values = processor.image_processor(images, return_tensors="pt")["pixel_values"]
    text = processor.tokenizer(
        list(texts),
        padding="longest",
        truncation=True,
        max_length=MAX_TEXT_TOKENS["blip2"],
        return_tensors="pt",
        return_token_type_ids=False,
    )
    input_ids, mask = text["input_ids"], text["attention_mask"]
    if getattr(config, "image_token_index", None) is not None:
        n = config.num_query_tokens
        input_ids = torch.cat(
            [torch.full((len(input_ids), n), config.image_token_index, dtype=input_ids.dtype), input_ids], 1
        )
        mask = torch.cat([torch.ones((len(mask), n), dtype=mask.dtype), mask], 1)
    return {"pixel_values": pixel_values, "input_ids": input_ids, "attention_mask": mask}


def itm_scores(model, processor, family: str, images, texts, head: str, device: str = "cpu") -> np.ndarray:
    """One float32 score per (image, text) pair (module docstring)."""
    score_column_of(head)
    if family == "blip":
        inputs = blip_inputs(processor, images, texts, head, model.config.text_config)
    else:
        inputs = blip2_inputs(processor, images, texts, model.config)
    return _forward(model, family, head, inputs, device)


def _forward(model, family: str, head: str, inputs: dict, device) -> np.ndarray:
    import torch

    inputs = {k: v.to(device) for k, v in inputs.items()}
    inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
    with torch.no_grad():
        if family == "blip":
            scores = _blip_scores(model, head=head, **inputs)
        else:
            out = model(**inputs, use_image_text_matching_head=head == "itm")
            logits = out.logits_per_image
            # ITC: logits_per_image[i, j] = max over the queries of image i against text j
            scores = logits.float().softmax(-1)[:, 1] if head == "itm" else torch.diagonal(logits)
    return scores.float().cpu().numpy().astype(np.float32)


class _PixelValues:
    """A BLIP image processor on one image (picklable, for the loader's workers)."""

    def __init__(self, image_processor):
        self.image_processor = image_processor

    def __call__(self, image):
        return self.image_processor([image], return_tensors="pt")["pixel_values"][0]


class _TokenIds:
    """A BLIP / BLIP-2 tokenizer over captions, truncated as the original code truncates them,
    without padding (the batch is padded in the main process, `_Collate`)."""

    def __init__(self, tokenizer, family: str):
        self.tokenizer, self.family = tokenizer, family

    def __call__(self, texts):
        extra = {"return_token_type_ids": False} if self.family == "blip2" else {}
        ids = self.tokenizer(list(texts), truncation=True, max_length=MAX_TEXT_TOKENS[self.family], **extra)
        return ids["input_ids"]


class _Collate:
    """A batch's token ids padded to its longest, as `blip_inputs` / `blip2_inputs` pad them."""

    def __init__(self, tokenizer, family: str, head: str, config):
        self.tokenizer, self.family, self.head, self.config = tokenizer, family, head, config

    def __call__(self, rows) -> dict:
        import torch

        padded = self.tokenizer.pad({"input_ids": [list(r) for r in rows]}, padding="longest", return_tensors="pt")
        input_ids, mask = padded["input_ids"].clone(), padded["attention_mask"]
        if self.family == "blip":
            if self.head == "itm":
                input_ids[:, 0] = enc_token_id(self.tokenizer, self.config.text_config)
        elif getattr(self.config, "image_token_index", None) is not None:
            n = self.config.num_query_tokens
            input_ids = torch.cat(
                [torch.full((len(input_ids), n), self.config.image_token_index, dtype=input_ids.dtype), input_ids], 1
            )
            mask = torch.cat([torch.ones((len(mask), n), dtype=mask.dtype), mask], 1)
        return {"input_ids": input_ids, "attention_mask": mask}


class ItmPassModel:
    """A BLIP / BLIP-2 ITM model in a pass (`curate.scoring.one_pass`): its image processor and
    tokenizer in the loader's workers, the batch padded as `itm_scores` pads it, its head on the
    job's device."""

    def __init__(self, name: str, model, processor, family: str, head: str):
        from curate.data.loader import PoolInputs

        score_column_of(head)
        self.name, self.model, self.family, self.head = name, model, family, head
        image_settings = json.dumps(processor.image_processor.to_dict(), sort_keys=True, default=str)
        self.image_key = f"image:{family}:{image_settings}"
        self.text_key = f"text:{family}:{head}:{name}"
        self.inputs = PoolInputs(
            images={self.image_key: _PixelValues(processor.image_processor)},
            texts={self.text_key: _TokenIds(processor.tokenizer, family)},
            collate={self.text_key: _Collate(processor.tokenizer, family, head, model.config)},
        )

    def run(self, batch) -> dict:
        device = next(self.model.parameters()).device
        inputs = {"pixel_values": batch.images[self.image_key], **batch.text_inputs[self.text_key]}
        return {"score": _forward(self.model, self.family, self.head, inputs, device)}


def _blip_scores(model, pixel_values, input_ids, attention_mask, head: str):
    """``BlipForImageTextRetrieval.forward`` per pair, its image attention mask on the model's
    device (transformers builds it on the CPU), ITC as the pairs' cosines, not the matrix."""
    import torch
    from torch.nn.functional import normalize

    image_embeds = model.vision_model(pixel_values=pixel_values).last_hidden_state
    if head == "itm":
        image_atts = torch.ones(image_embeds.shape[:-1], dtype=torch.long, device=image_embeds.device)
        text = model.text_encoder(
            input_ids=input_ids,
            attention_mask=attention_mask,
            encoder_hidden_states=image_embeds,
            encoder_attention_mask=image_atts,
        ).last_hidden_state
        return model.itm_head(text[:, 0, :]).float().softmax(-1)[:, 1]
    image_feat = normalize(model.vision_proj(image_embeds[:, 0, :]), dim=-1)
    text_feat = _blip_text_features(model, input_ids, attention_mask)
    return (image_feat * text_feat).sum(-1)


def _blip_text_features(model, input_ids, attention_mask):
    """BLIP's contrastive text features: the text encoder alone (no image), its ``[CLS]`` output
    through ``text_proj``, L2-normalised."""
    from torch.nn.functional import normalize

    text = model.text_encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    return normalize(model.text_proj(text[:, 0, :]), dim=-1)


def blip_text_features(model, processor, texts, device: str = "cpu") -> np.ndarray:
    """``len(texts) x D`` float32 contrastive text features of a BLIP ITM model (the ITC head's
    text side: ``[CLS]`` first, text cut at 35 tokens, L2-normalised), as Sieve's BLIP text
    encoder reads captions (SIEVE Table 4)."""
    import torch

    text = processor.tokenizer(
        [str(t) for t in texts],
        padding="longest",
        truncation=True,
        max_length=MAX_TEXT_TOKENS["blip"],
        return_tensors="pt",
    )
    with torch.no_grad():
        feats = _blip_text_features(model, text["input_ids"].to(device), text["attention_mask"].to(device))
    return feats.float().cpu().numpy().astype(np.float32)


def score_chunk_itm_group(
    models: dict,
    shard_paths: list,
    batch_size: int = 64,
    device: str = "cpu",
    workers: int = 0,
    precision: str = "bf16",
) -> dict:
    """Score every kept sample of the pool shards ``shard_paths`` with every ITM model of
    ``models`` (scorer name -> ``(model folder, head)``, `load_itm_model`) in ONE pass, like
    `curate.scoring.clip_score.score_chunk_group`. Returns scorer name -> ``(DataFrame[uid,
    <head>_score float32], report)``, the report being the `SkipReport` plus
    ``skipped.nan_score``, ``model`` and ``head``."""
    from curate.devices import inference_autocast
    from curate.scoring.one_pass import run_pass

    passes = []
    for name, (folder, head) in models.items():
        model, processor, family = load_itm_model(folder, device=device)
        passes.append(ItmPassModel(name, model, processor, family, head))
    uids, _, outputs, report = run_pass(
        passes,
        shard_paths,
        batch_size,
        workers=workers,
        device=device,
        autocast=lambda: inference_autocast(device, precision),
        desc=f"itm score ({len(passes)} models)",
    )
    results = {}
    for scorer in passes:
        column = score_column_of(scorer.head)
        values = outputs[scorer.name].get("score", np.zeros(0, np.float32))
        df = pd.DataFrame({"uid": pd.Series(uids, dtype=object), column: values})
        nan = np.isnan(values)
        result = report.as_dict()
        result["skipped"]["nan_score"] = int(nan.sum())
        if nan.any():
            log.warning(
                "%s: %d samples got a NaN %s score and are dropped (e.g. uid %s)",
                scorer.name,
                int(nan.sum()),
                scorer.head,
                df.uid[nan].iloc[0],
            )
            df = df[~nan].reset_index(drop=True)
            result["kept"] = int(len(df))
        result["model"] = str(models[scorer.name][0])
        result["head"] = scorer.head
        results[scorer.name] = (df, result)
    return results


def score_chunk_itm(
    model_dir,
    shard_paths: list,
    head: str,
    batch_size: int = 64,
    device: str = "cpu",
    workers: int = 0,
    precision: str = "bf16",
) -> tuple[pd.DataFrame, dict]:
    """Score every kept sample of the pool shards ``shard_paths`` with the ITM model in
    ``model_dir`` (`load_itm_model`): `score_chunk_itm_group` with one model. Returns
    ``(DataFrame[uid, <head>_score float32], report)``."""
    score_column_of(head)
    return score_chunk_itm_group(
        {"model": (model_dir, head)}, shard_paths, batch_size, device, workers=workers, precision=precision
    )["model"]


# ---------------------------------------------------------------------------------------------
# Original BLIP checkpoints -> transformers


def blip_key_to_transformers(key: str) -> str:
    """An original BLIP state-dict key in ``BlipForImageTextRetrieval``'s naming: the renaming of
    transformers' ``convert_blip_original_pytorch_to_hf.py`` (``rename_key``). Text encoder,
    projections and ITM head keep their names."""
    if "visual_encoder" in key:
        key = re.sub("visual_encoder*", "vision_model.encoder", key)
    if "blocks" in key:
        key = re.sub(r"blocks", "layers", key)
    if "attn" in key:
        key = re.sub(r"attn", "self_attn", key)
    if "norm1" in key:
        key = re.sub(r"norm1", "layer_norm1", key)
    if "norm2" in key:
        key = re.sub(r"norm2", "layer_norm2", key)
    if "encoder.norm" in key:
        key = re.sub(r"encoder.norm", "post_layernorm", key)
    if "encoder.patch_embed.proj" in key:
        key = re.sub(r"encoder.patch_embed.proj", "embeddings.patch_embedding", key)
    if "encoder.pos_embed" in key:
        key = re.sub(r"encoder.pos_embed", "embeddings.position_embedding", key)
    if "encoder.cls_token" in key:
        key = re.sub(r"encoder.cls_token", "embeddings.class_embedding", key)
    if "self_attn" in key:
        key = re.sub(r"self_attn.proj", "self_attn.projection", key)
    return key


def load_original_state_dict(path) -> dict:
    """The state dict of an original BLIP / LAVIS checkpoint: ``{'model': state_dict, ...}`` as
    salesforce/BLIP saves it (a bare state dict is accepted too). Loaded with
    ``weights_only=True``."""
    import torch

    checkpoint = torch.load(str(path), map_location="cpu", weights_only=True)
    state = checkpoint.get("model", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not state:
        raise ValueError(f"{path}: not a BLIP checkpoint ({{'model': state_dict}} expected)")
    return state


def _count_layers(keys, prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    found = {int(m.group(1)) for k in keys if (m := pattern.match(k))}
    if not found or found != set(range(max(found) + 1)):
        raise ValueError(f"checkpoint layers under {prefix!r}: {sorted(found)}")
    return max(found) + 1


def blip_config_from_state_dict(state: dict, tokenizer=None, head_dim: int = 64, text_prefix: str = "text_encoder."):
    """The ``BlipConfig`` of a converted BLIP state dict, read off its tensors' shapes (the text
    model's under ``text_prefix``: ``text_encoder.`` for ITM, ``text_decoder.bert.`` for the
    captioner), with the special token ids of ``tokenizer`` (BLIP's: ``[DEC]`` bos, ``[SEP]``,
    ``[PAD]``).

    The number of heads is not in the weights: BLIP's ViT-B/16 and ViT-L/16 and its BERT-base
    text encoder all have ``head_dim`` = 64. BLIP's ViT uses LayerNorm eps 1e-6 (timm's), its
    BERT 1e-12."""
    from transformers import BlipConfig

    prefix = text_prefix
    keys = list(state)
    patch = state["vision_model.embeddings.patch_embedding.weight"]
    positions = state["vision_model.embeddings.position_embedding"].shape[1]
    grid = int(round((positions - 1) ** 0.5))
    if grid * grid != positions - 1:
        raise ValueError(f"{positions} vision positions are not a square grid plus [CLS]")
    vision_hidden, patch_size = patch.shape[0], patch.shape[-1]
    words = state[f"{prefix}embeddings.word_embeddings.weight"]
    text_hidden = words.shape[1]
    vision = dict(
        hidden_size=vision_hidden,
        patch_size=patch_size,
        image_size=grid * patch_size,
        num_hidden_layers=_count_layers(keys, "vision_model.encoder.layers."),
        num_attention_heads=vision_hidden // head_dim,
        intermediate_size=state["vision_model.encoder.layers.0.mlp.fc1.weight"].shape[0],
        layer_norm_eps=1e-6,
    )
    text = dict(
        vocab_size=words.shape[0],
        hidden_size=text_hidden,
        encoder_hidden_size=vision_hidden,
        num_hidden_layers=_count_layers(keys, f"{prefix}encoder.layer."),
        num_attention_heads=text_hidden // head_dim,
        intermediate_size=state[f"{prefix}encoder.layer.0.intermediate.dense.weight"].shape[0],
        max_position_embeddings=state[f"{prefix}embeddings.position_embeddings.weight"].shape[0],
        layer_norm_eps=1e-12,
    )
    if tokenizer is not None:  # those it has; transformers' defaults are BLIP's (bos [DEC] 30522)
        ids = dict(
            bos_token_id=tokenizer.bos_token_id,
            sep_token_id=tokenizer.sep_token_id,
            eos_token_id=tokenizer.sep_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        text.update({k: v for k, v in ids.items() if v is not None})
    projection = (
        {"image_text_hidden_size": state["vision_proj.weight"].shape[0]} if "vision_proj.weight" in state else {}
    )
    return BlipConfig(vision_config=vision, text_config=text, **projection)


#: What an original BLIP checkpoint converts to (a ``models`` entry's ``convert``): the
#: transformers class and the prefix of its text model's weights.
BLIP_CONVERSIONS = {
    "blip_itm": ("BlipForImageTextRetrieval", "text_encoder."),
    "blip_caption": ("BlipForConditionalGeneration", "text_decoder.bert."),
}


def convert_blip_checkpoint(
    checkpoint_path, out_dir, processor_dir, head_dim: int = 64, target: str = "blip_itm"
) -> dict:
    """Convert an original BLIP checkpoint into a ``BlipForImageTextRetrieval`` (``target``
    ``blip_itm``) or ``BlipForConditionalGeneration`` (``blip_caption``) folder at ``out_dir``
    with the processor of ``processor_dir`` (its image size set to the checkpoint's); returns the
    record also written to ``out_dir/conversion.json``. Raises when a weight of the target model
    is not in the checkpoint or has another shape (the captioner's output embedding, tied to its
    word embeddings, may be absent). ``head_dim``: attention head width
    (`blip_config_from_state_dict`)."""
    import torch
    import transformers
    from transformers import BlipProcessor

    from curate.scoring.pretrained import file_sha256

    if target not in BLIP_CONVERSIONS:
        raise ValueError(f"no BLIP conversion {target!r}; known: {', '.join(BLIP_CONVERSIONS)}")
    class_name, text_prefix = BLIP_CONVERSIONS[target]
    original = load_original_state_dict(checkpoint_path)
    renamed = {blip_key_to_transformers(k): v for k, v in original.items()}
    processor = BlipProcessor.from_pretrained(str(processor_dir))
    config = blip_config_from_state_dict(renamed, processor.tokenizer, head_dim=head_dim, text_prefix=text_prefix)
    model = getattr(transformers, class_name)(config).eval()
    expected = model.state_dict()
    kept = {k: v for k, v in renamed.items() if k in expected}
    tied = set(_tied_keys(model))
    missing = sorted(k for k in expected if k not in kept and not k.endswith("position_ids") and k not in tied)
    if missing:
        raise ValueError(f"{checkpoint_path}: no weights for {len(missing)} keys of {class_name}, e.g. {missing[:5]}")
    wrong = [k for k, v in kept.items() if v.shape != expected[k].shape]
    if wrong:
        raise ValueError(
            f"{checkpoint_path}: shapes differ for {wrong[:5]} (e.g. {kept[wrong[0]].shape} vs "
            f"{expected[wrong[0]].shape})"
        )
    result = model.load_state_dict({k: v.to(torch.float32) for k, v in kept.items()}, strict=False)
    if any(not k.endswith("position_ids") and k not in tied for k in result.missing_keys):
        raise ValueError(f"{checkpoint_path}: missing {result.missing_keys[:5]}")
    model.tie_weights()
    size = config.vision_config.image_size
    processor.image_processor.size = {"height": size, "width": size}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir))
    processor.save_pretrained(str(out_dir))
    dropped = sorted(k for k in original if blip_key_to_transformers(k) not in kept)
    record = {
        "checkpoint": str(checkpoint_path),
        "target": class_name,
        "checkpoint_sha256": file_sha256(checkpoint_path),
        "processor": str(processor_dir),
        "image_size": size,
        "converted": len(kept),
        "dropped": len(dropped),
        "dropped_prefixes": sorted({k.split(".", 1)[0] for k in dropped}),
    }
    (out_dir / CONVERSION_RECORD).write_text(json.dumps(record, indent=2) + "\n")
    return record


def _tied_keys(model) -> list[str]:
    """The weights of ``model`` that transformers ties to another (the captioner's output
    embedding to its word embeddings): a checkpoint need not hold them."""
    tied = getattr(model, "all_tied_weights_keys", None) or getattr(model, "_tied_weights_keys", None) or {}
    return list(tied) if isinstance(tied, dict) else list(tied)


def convert_model(entry: dict, fetched_dir, out_dir, processor_dir, head_dim: int = 64) -> dict:
    """Convert a fetched ``library: url`` model (its folder's ``fetch.json`` names the file) as its
    config entry's ``convert`` says (:data:`BLIP_CONVERSIONS`)."""
    from curate.scoring.pretrained import fetched_file

    kind = entry.get("convert")
    if kind not in BLIP_CONVERSIONS:
        raise ValueError(f"no conversion {kind!r}; known: {', '.join(BLIP_CONVERSIONS)}")
    return convert_blip_checkpoint(fetched_file(fetched_dir), out_dir, processor_dir, head_dim=head_dim, target=kind)
