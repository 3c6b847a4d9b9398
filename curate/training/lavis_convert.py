"""A LAVIS-trained BLIP (``train_blip_lavis``) in the transformers layout `curate.evaluation.blip`
evaluates (`curate.training.blip.save_blip`: ``retrieval/``, ``captioner/``, the processor,
``itc.json``). Runs in the project's env (rule ``convert_blip_lavis``); reads no LAVIS code.

LAVIS's ``blip_pretrain`` state dict (``{"model": ...}`` of its ``checkpoint_<epoch>.pth``) holds
the ViT (``visual_encoder.*``, timm/DeiT naming), the text encoder with cross-attention
(``text_encoder.*``, BERT naming), the ITC projections and ITM head, the decoder
(``text_decoder.bert.*`` and its LM head ``text_decoder.cls.*``), the temperature ``temp``, and
what only pretraining uses: the momentum encoders (``*_m.*``) and the ITC queues. The mapping:

- ``visual_encoder.*`` -> ``vision_model.*`` of both models, renamed as transformers' own BLIP
  conversion renames them (`curate.scoring.itm.blip_key_to_transformers`);
- ``text_encoder.*``, ``vision_proj.*``, ``text_proj.*``, ``itm_head.*`` -> the retrieval model,
  names unchanged (LAVIS's med BERT and transformers' ``BlipTextModel`` share BERT's names);
- ``text_decoder.*`` -> the captioner, names unchanged;
- ``temp`` -> ``itc.json``; the momentum encoders and queues are dropped (listed in the record).

The architecture is the one the run built (``arch.json``, written by `curate.training.lavis_blip`:
ViT width, depth, heads, patch and image size; LAVIS's med config; the special token ids), the
tokenizer the one it trained with (``tokenizer/``), the image processor LAVIS's evaluation
transform (bicubic resize to the image size, CLIP's mean and std). The converted model computes
LAVIS's ITC features (projected ``[CLS]`` of the ViT and of the text), ITM logits (``[ENC]``
first, cross-attending to the ViT) and decoder logits (``[DEC]`` first): a test checks them
against LAVIS's own model to 1e-5.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from curate.scoring.itm import blip_key_to_transformers
from curate.training.lavis_config import ARCH_FILE, TOKENIZER_DIR, last_checkpoint

CONVERSION_RECORD = "conversion.json"
#: LAVIS's evaluation transform normalises with CLIP's statistics
IMAGE_MEAN = (0.48145466, 0.4578275, 0.40821073)
IMAGE_STD = (0.26862954, 0.26130258, 0.27577711)
#: pretraining-only state: momentum encoders and projections, the ITC queues
_DROPPED = re.compile(r"^(\w+_m\.|image_queue$|text_queue$|queue_ptr$|idx_queue$)")
_RETRIEVAL_PREFIXES = ("text_encoder.", "vision_proj.", "text_proj.", "itm_head.")


def lavis_key(key: str) -> tuple[tuple[str, ...], str] | None:
    """``((parts...), transformers key)`` of a LAVIS ``blip_pretrain`` key, the parts being
    ``retrieval`` and/or ``captioner``; None for what is dropped (``temp`` goes to itc.json)."""
    if key == "temp" or _DROPPED.match(key):
        return None
    if key.startswith("visual_encoder."):
        return ("retrieval", "captioner"), blip_key_to_transformers(key)
    if key.startswith(_RETRIEVAL_PREFIXES):
        return ("retrieval",), key
    if key.startswith("text_decoder."):
        return ("captioner",), key
    raise ValueError(f"unknown LAVIS blip_pretrain key {key!r}")


def split_state_dict(state: dict) -> tuple[dict, dict, list[str]]:
    """``(retrieval state dict, captioner state dict, dropped keys)`` of a LAVIS state dict."""
    parts: dict[str, dict] = {"retrieval": {}, "captioner": {}}
    dropped = []
    for key, value in state.items():
        if key == "temp" or key.endswith(".position_ids"):  # itc.json; a buffer transformers derives
            continue
        mapped = lavis_key(key)
        if mapped is None:
            dropped.append(key)
            continue
        for part in mapped[0]:
            parts[part][mapped[1]] = value
    return parts["retrieval"], parts["captioner"], sorted(dropped)


def blip_config(arch: dict):
    """transformers' ``BlipConfig`` of the model a LAVIS run built (its ``arch.json``)."""
    from transformers import BlipConfig

    vision, text, tokens = arch["vision"], arch["text"], arch["tokens"]
    vision_config = dict(
        hidden_size=vision["width"],
        num_hidden_layers=vision["depth"],
        num_attention_heads=vision["heads"],
        intermediate_size=int(vision["width"] * vision["mlp_ratio"]),
        patch_size=vision["patch_size"],
        image_size=vision["image_size"],
        layer_norm_eps=1e-6,  # LAVIS's ViT (timm's)
        hidden_act="gelu",
    )
    text_config = dict(
        vocab_size=tokens["vocab_size"],
        hidden_size=text["hidden_size"],
        encoder_hidden_size=vision["width"],
        num_hidden_layers=text["num_hidden_layers"],
        num_attention_heads=text["num_attention_heads"],
        intermediate_size=text["intermediate_size"],
        max_position_embeddings=text["max_position_embeddings"],
        layer_norm_eps=text["layer_norm_eps"],
        hidden_act=text["hidden_act"],
        bos_token_id=tokens["bos_token_id"],
        sep_token_id=tokens["sep_token_id"],
        eos_token_id=tokens["sep_token_id"],
        pad_token_id=tokens["pad_token_id"],
        label_smoothing=0.1,
    )
    return BlipConfig(vision_config=vision_config, text_config=text_config, image_text_hidden_size=arch["embed_dim"])


def _load(model, state: dict, what: str) -> None:
    import torch

    expected = model.state_dict()
    unknown = sorted(set(state) - set(expected))
    missing = sorted(k for k in expected if k not in state and not k.endswith("position_ids"))
    # transformers ties the decoder's output embedding to its bias / input embedding
    missing = [k for k in missing if not k.endswith(("cls.predictions.decoder.weight", "cls.predictions.decoder.bias"))]
    if unknown or missing:
        raise ValueError(f"{what}: LAVIS keys without a place {unknown[:5]}, weights missing {missing[:5]}")
    wrong = [k for k, v in state.items() if tuple(v.shape) != tuple(expected[k].shape)]
    if wrong:
        k = wrong[0]
        raise ValueError(
            f"{what}: shapes differ for {wrong[:5]} (e.g. {tuple(state[k].shape)} vs {tuple(expected[k].shape)})"
        )
    model.load_state_dict({k: v.to(torch.float32) for k, v in state.items()}, strict=False)


def convert_state(state: dict, arch: dict, tokenizer):
    """``(TinyBlip, BlipProcessor, dropped keys)`` of a LAVIS ``blip_pretrain`` state dict."""
    from transformers import BlipForConditionalGeneration, BlipForImageTextRetrieval, BlipImageProcessor, BlipProcessor
    from transformers.image_utils import PILImageResampling

    from curate.training.blip import TinyBlip

    config = blip_config(arch)
    retrieval_state, captioner_state, dropped = split_state_dict(state)
    retrieval, captioner = BlipForImageTextRetrieval(config).eval(), BlipForConditionalGeneration(config).eval()
    _load(retrieval, retrieval_state, "retrieval model")
    _load(captioner, captioner_state, "captioner")
    model = TinyBlip(retrieval, captioner, temp=float(state["temp"]))
    model.enc_token_id = int(arch["tokens"]["enc_token_id"])
    model.text_pooling = "cls"  # BLIP's ITC text feature
    size = int(arch["vision"]["image_size"])
    image_processor = BlipImageProcessor(
        size={"height": size, "width": size},
        resample=PILImageResampling.BICUBIC,
        image_mean=list(IMAGE_MEAN),
        image_std=list(IMAGE_STD),
        do_convert_rgb=True,
    )
    return model.eval(), BlipProcessor(image_processor=image_processor, tokenizer=tokenizer), dropped


def load_run_tokenizer(run_dir, arch: dict):
    """The tokenizer the LAVIS run trained with (its saved ``tokenizer/``: BERT's vocabulary, then
    ``[DEC]`` and ``[ENC]``, added as LAVIS adds them), rebuilt with both registered as special
    tokens (read back as-is, transformers 5 turns the added ``[ENC]`` of transformers 4.26 into a
    lower-cased plain token), checked against the special token ids the run recorded."""
    from transformers import BertTokenizer

    folder = Path(run_dir) / TOKENIZER_DIR
    lines = (folder / "vocab.txt").read_text(encoding="utf-8").splitlines()
    vocab = {token: i for i, token in enumerate(lines)}
    added = json.loads((folder / "added_tokens.json").read_text())
    if sorted(added, key=added.get) != ["[DEC]", "[ENC]"] or sorted(added.values()) != [len(vocab), len(vocab) + 1]:
        raise ValueError(f"{folder}: added tokens {added}, expected [DEC] and [ENC] after the vocabulary")
    vocab.update(added)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    tokenizer = BertTokenizer(
        vocab=vocab,
        do_lower_case=bool(config.get("do_lower_case", True)),
        bos_token="[DEC]",
        extra_special_tokens=["[ENC]"],
        model_max_length=int(config.get("model_max_length", 512)),
    )
    tokens = arch["tokens"]
    found = {
        "bos_token_id": tokenizer.bos_token_id,
        "enc_token_id": tokenizer.convert_tokens_to_ids("[ENC]"),
        "sep_token_id": tokenizer.sep_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "vocab_size": len(tokenizer),
    }
    differ = {k: (v, tokens[k]) for k, v in found.items() if v != tokens[k]}
    if differ:
        raise ValueError(f"{folder}: token ids (found, trained) differ: {differ}")
    return tokenizer


def convert_lavis_blip(run_dir, out_dir, checkpoint=None) -> dict:
    """Convert the LAVIS run in `run_dir` (its last checkpoint, or `checkpoint`) into a
    `curate.training.blip.save_blip` folder at `out_dir`; returns the record also written there."""
    import torch

    from curate.scoring.pretrained import file_sha256
    from curate.training.blip import save_blip

    run_dir = Path(run_dir)
    arch = json.loads((run_dir / ARCH_FILE).read_text())
    checkpoint = Path(checkpoint) if checkpoint else last_checkpoint(run_dir)
    saved = torch.load(str(checkpoint), map_location="cpu", weights_only=True)
    state = saved["model"] if isinstance(saved, dict) and "model" in saved else saved
    model, processor, dropped = convert_state(state, arch, load_run_tokenizer(run_dir, arch))
    out_dir = Path(out_dir)
    save_blip(model, processor, out_dir)
    record = {
        "lavis_run": str(run_dir),
        "checkpoint": str(checkpoint),
        "checkpoint_sha256": file_sha256(checkpoint),
        "epoch": saved.get("epoch") if isinstance(saved, dict) else None,
        "image_size": int(arch["vision"]["image_size"]),
        "converted": sum(len(part) for part in split_state_dict(state)[:2]),
        "dropped": len(dropped),
        "dropped_prefixes": sorted({k.split(".", 1)[0] for k in dropped}),
    }
    (out_dir / CONVERSION_RECORD).write_text(json.dumps(record, indent=2) + "\n")
    return record
