"""Tiny files in the layouts of LAVIS BLIP pretraining's two initialisations, for the rehearsal's
local internet and the tests: what the ``deit-base-patch16-224`` and ``bert-base-uncased`` entries of
``models`` deliver, with tiny weights.

- `tiny_deit_checkpoint`: a ``.pth`` holding ``{"model": state_dict}`` of a timm
  ``VisionTransformer`` (DeiT's own layout: ``cls_token``, ``pos_embed``, ``patch_embed.proj``,
  ``blocks.<i>.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}``, ``norm``, ``head``), as
  ``deit_base_patch16_224-b5f2ef4d.pth`` is.
- `tiny_bert_folder`: a Hub snapshot of a BERT (``config.json`` of ``BertForMaskedLM``,
  ``model.safetensors`` with the ``bert.`` and ``cls.predictions`` weights, ``vocab.txt``,
  ``tokenizer_config.json``), as ``google-bert/bert-base-uncased`` is; its lower-cased WordPiece
  vocabulary is fitted to the given texts (`curate.scoring.captioning.train_wordpiece_tokenizer`).

Both run in the project's env (timm, transformers); LAVIS reads them in its own
(`curate.training.lavis_blip`): its ViT is sized by the checkpoint, its text model by config.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch


def tiny_deit_checkpoint(
    path, width: int = 64, depth: int = 2, heads: int = 1, patch_size: int = 16, image_size: int = 64, seed: int = 0
) -> Path:
    """A DeiT-layout ViT checkpoint with seeded random weights (timm's initialisation)."""
    from timm.models.vision_transformer import VisionTransformer

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        vit = VisionTransformer(
            img_size=image_size, patch_size=patch_size, embed_dim=width, depth=depth, num_heads=heads, num_classes=10
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": vit.state_dict()}, path)
    return path


def tiny_bert_folder(
    out_dir,
    texts,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 2,
    vocab_size: int = 400,
    max_positions: int = 64,
    seed: int = 0,
) -> Path:
    """A bert-base-uncased-layout snapshot with seeded random weights and a vocabulary fitted to `texts`."""
    from transformers import BertConfig, BertForMaskedLM

    from curate.scoring.captioning import train_wordpiece_tokenizer

    tokenizer = train_wordpiece_tokenizer([str(t) for t in texts], vocab_size=vocab_size, blip_tokens=False)
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=4 * hidden,
        max_position_embeddings=max_positions,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = BertForMaskedLM(config)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir))
    (out_dir / "vocab.txt").write_text("".join(f"{token}\n" for token, _ in vocab))
    # bert-base-uncased's own tokenizer_config.json
    (out_dir / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True, "model_max_length": 512}) + "\n")
    return out_dir
