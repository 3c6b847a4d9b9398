"""Tiny Hugging Face snapshots of the other Hub models the paper scale names.

- ``microsoft/git-base``: ``GitForCausalLM`` + ``GitProcessor`` (CLIP's image processor, a BERT
  tokenizer), ``save_pretrained``.
- ``openai/clip-vit-large-patch14-336``: the whole ``CLIPModel`` (text tower included) with its
  image processor, as the Hub repo holds it; LLaVA reads its vision tower with
  ``CLIPVisionModel.from_pretrained``, which takes ``vision_config`` and ``vision_model.*`` from it.
- ``facebook/dinov2-large``: ``Dinov2Model`` + DINOv2's ``BitImageProcessor`` (Density-Based
  Pruning's image encoder), ``save_pretrained``.
- ``lmsys/vicuna-7b-v1.5``: a ``LlamaForCausalLM`` in float16, sharded in two
  ``pytorch_model-0000N-of-00002.bin`` files with ``pytorch_model.bin.index.json``, a
  ``generation_config.json`` and Llama's SentencePiece tokenizer: ``tokenizer.model`` (a
  SentencePiece ``ModelProto``: ``<unk> <s> </s>``, 256 byte pieces, then BPE pieces scored by merge
  order, as Llama's) with ``tokenizer_config.json`` naming ``LlamaTokenizer`` and
  ``special_tokens_map.json`` (pad = ``<unk>``), no ``tokenizer.json``, as the real repo.
- ``sentence-transformers/all-MiniLM-L6-v2``: sentence-transformers' layout (``modules.json``,
  ``config_sentence_transformers.json``, ``sentence_bert_config.json``, ``1_Pooling/``,
  ``2_Normalize/``, a BERT ``config.json`` + ``model.safetensors`` and tokenizer), from the
  workflow's own `curate.scoring.sentence.build_tiny_sentence_encoder`.
"""

from __future__ import annotations

import json
from pathlib import Path

from curate.rehearsal.model_common import english_captions, seeded, write_json

HIDDEN = 64


def build_git_snapshot(folder, seed: int, image_size: int = 32, patch: int = 16) -> Path:
    """A ``microsoft/git-base`` snapshot."""
    from transformers import CLIPImageProcessor, GitConfig, GitForCausalLM, GitProcessor

    from curate.scoring.captioning import CLIP_MEAN, CLIP_STD, train_wordpiece_tokenizer

    tokenizer = train_wordpiece_tokenizer(english_captions(seed), vocab_size=300, blip_tokens=False)
    config = GitConfig(
        vision_config=dict(
            hidden_size=HIDDEN,
            intermediate_size=4 * HIDDEN,
            num_hidden_layers=2,
            num_attention_heads=1,
            image_size=image_size,
            patch_size=patch,
        ),
        vocab_size=len(tokenizer),
        hidden_size=HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=1,
        intermediate_size=4 * HIDDEN,
        max_position_embeddings=64,
        bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with seeded(seed):
        model = GitForCausalLM(config).eval()
    images = CLIPImageProcessor(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
        image_mean=list(CLIP_MEAN),
        image_std=list(CLIP_STD),
    )
    folder = Path(folder)
    model.save_pretrained(str(folder))
    save_processor_files(GitProcessor(images, tokenizer), folder)
    return folder


def save_processor_files(processor, folder) -> None:
    """A processor as the Hub's repos hold it: its image processor's ``preprocessor_config.json``
    and its tokenizer's files (no ``processor_config.json``, which transformers 5 writes)."""
    processor.image_processor.save_pretrained(str(folder))
    processor.tokenizer.save_pretrained(str(folder))


def build_clip_vision_snapshot(folder, seed: int, image_size: int = 42, patch: int = 14) -> Path:
    """An ``openai/clip-vit-large-patch14-336`` snapshot (``CLIPModel`` + image processor)."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    from curate.scoring.captioning import CLIP_MEAN, CLIP_STD

    config = CLIPConfig(
        text_config=dict(
            vocab_size=512,
            hidden_size=HIDDEN,
            intermediate_size=4 * HIDDEN,
            num_hidden_layers=1,
            num_attention_heads=1,
            max_position_embeddings=77,
        ),
        vision_config=dict(
            hidden_size=HIDDEN,
            intermediate_size=4 * HIDDEN,
            num_hidden_layers=2,  # LLaVA reads the second-to-last layer
            num_attention_heads=1,
            image_size=image_size,
            patch_size=patch,
        ),
        projection_dim=32,
    )
    with seeded(seed):
        model = CLIPModel(config).eval()
    folder = Path(folder)
    model.save_pretrained(str(folder))
    CLIPImageProcessor(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
        image_mean=list(CLIP_MEAN),
        image_std=list(CLIP_STD),
    ).save_pretrained(str(folder))
    return folder


def build_dinov2_snapshot(folder, seed: int, image_size: int = 28, patch: int = 14) -> Path:
    """A ``facebook/dinov2-large`` snapshot: ``Dinov2Model`` and DINOv2's ``BitImageProcessor``
    (resize the shortest edge, centre crop, ImageNet mean and std), ``save_pretrained``."""
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    config = Dinov2Config(
        hidden_size=HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=2,
        mlp_ratio=4,
        image_size=image_size,
        patch_size=patch,
    )
    with seeded(seed):
        model = Dinov2Model(config).eval()
    folder = Path(folder)
    model.save_pretrained(str(folder))
    BitImageProcessor(
        size={"shortest_edge": image_size + image_size // 7},  # 256 -> 224 as DINOv2's 8:7
        crop_size={"height": image_size, "width": image_size},
        do_center_crop=True,
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
    ).save_pretrained(str(folder))
    return folder


# --------------------------------------------------------------------------- Vicuna
LLAMA_SPECIALS = ("<unk>", "<s>", "</s>")


def _varint(n: int) -> bytes:
    out = bytearray()
    n &= (1 << 64) - 1  # negative int32 / int64 fields are 10-byte two's complement varints
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, value) -> bytes:
    """One protobuf field: a varint (int, bool), a fixed32 float, or length-delimited bytes / str."""
    import struct

    if isinstance(value, float):
        return _varint(number << 3 | 5) + struct.pack("<f", value)
    if isinstance(value, (bool, int)):
        return _varint(number << 3) + _varint(int(value))
    data = value.encode() if isinstance(value, str) else value
    return _varint(number << 3 | 2) + _varint(len(data)) + data


#: SentencePiece's ``ModelProto`` field numbers (sentencepiece_model.proto) used here
SP_PIECE = {"piece": 1, "score": 2, "type": 3}
SP_TYPE = {"NORMAL": 1, "UNKNOWN": 2, "CONTROL": 3, "BYTE": 6}
SP_TRAINER = {
    "model_type": 3,
    "vocab_size": 4,
    "split_digits": 25,
    "byte_fallback": 35,
    "unk_id": 40,
    "bos_id": 41,
    "eos_id": 42,
    "pad_id": 43,
    "unk_piece": 45,
    "bos_piece": 46,
    "eos_piece": 47,
}
SP_NORMALIZER = {"name": 1, "add_dummy_prefix": 3, "remove_extra_whitespaces": 4, "escape_whitespaces": 5}


def sentencepiece_bpe_model(texts, vocab_size: int = 400) -> tuple[bytes, int]:
    """Llama's ``tokenizer.model`` format for a BPE fitted to `texts`: a SentencePiece
    ``ModelProto`` (BPE, byte fallback, ``▁`` for spaces, a dummy prefix) whose pieces are
    ``<unk> <s> </s>``, the 256 byte pieces ``<0x00>`` .. ``<0xFF>``, then the BPE's tokens,
    each scored minus its rank (SentencePiece's BPE merges the best-scored pair first). Encoded
    field by field (protobuf's wire format): registering sentencepiece_model.proto's descriptor
    in this process would clash with the one the tokenizer loaders register. Returns the bytes and
    the number of pieces."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[], show_progress=False)
    bpe.train_from_iterator(list(texts), trainer)
    tokens = [t for t, _ in sorted(bpe.get_vocab().items(), key=lambda kv: kv[1])]
    pieces = [(p, 0.0, t) for p, t in zip(LLAMA_SPECIALS, ("UNKNOWN", "CONTROL", "CONTROL"))]
    pieces += [(f"<0x{b:02X}>", 0.0, "BYTE") for b in range(256)]
    pieces += [(token, -float(rank), "NORMAL") for rank, token in enumerate(tokens)]
    out = b"".join(
        _field(1, _field(SP_PIECE["piece"], p) + _field(SP_PIECE["score"], s) + _field(SP_PIECE["type"], SP_TYPE[t]))
        for p, s, t in pieces
    )
    trainer_spec = {
        "model_type": 2,  # BPE
        "vocab_size": len(pieces),
        "split_digits": True,
        "byte_fallback": True,
        "unk_id": 0,
        "bos_id": 1,
        "eos_id": 2,
        "pad_id": -1,
        "unk_piece": LLAMA_SPECIALS[0],
        "bos_piece": LLAMA_SPECIALS[1],
        "eos_piece": LLAMA_SPECIALS[2],
    }
    out += _field(
        2, b"".join(_field(SP_TRAINER[k], v) for k, v in sorted(trainer_spec.items(), key=lambda kv: SP_TRAINER[kv[0]]))
    )
    normalizer = {
        "name": "identity",
        "add_dummy_prefix": True,
        "remove_extra_whitespaces": False,
        "escape_whitespaces": True,
    }
    out += _field(3, b"".join(_field(SP_NORMALIZER[k], v) for k, v in normalizer.items()))
    return out, len(pieces)


def build_llama_snapshot(folder, seed: int, shards: int = 2) -> Path:
    """An ``lmsys/vicuna-7b-v1.5`` snapshot (module docstring)."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    spm, vocab_size = sentencepiece_bpe_model(english_captions(seed))
    (folder / "tokenizer.model").write_bytes(spm)
    write_json(
        folder / "tokenizer_config.json",
        {
            "tokenizer_class": "LlamaTokenizer",
            "add_bos_token": True,
            "add_eos_token": False,
            "bos_token": "<s>",
            "eos_token": "</s>",
            "unk_token": "<unk>",
            "pad_token": None,
            "legacy": False,
            "model_max_length": 4096,
            "padding_side": "right",
            "clean_up_tokenization_spaces": False,
            "sp_model_kwargs": {},
        },
    )
    write_json(
        folder / "special_tokens_map.json",
        {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<unk>"},
    )
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=HIDDEN,
        intermediate_size=2 * HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=256,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        dtype="float16",
    )
    with seeded(seed):
        model = LlamaForCausalLM(config).eval()
    config.architectures = ["LlamaForCausalLM"]
    config.save_pretrained(str(folder))
    GenerationConfig(bos_token_id=1, eos_token_id=2, pad_token_id=0, max_length=256).save_pretrained(str(folder))
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    names = list(state)
    per = -(-len(names) // shards)
    weight_map, total = {}, 0
    for i in range(shards):
        part = names[i * per : (i + 1) * per]
        file = f"pytorch_model-{i + 1:05d}-of-{shards:05d}.bin"
        torch.save({k: state[k] for k in part}, folder / file)
        weight_map.update({k: file for k in part})
        total += sum(state[k].numel() * state[k].element_size() for k in part)
    write_json(folder / "pytorch_model.bin.index.json", {"metadata": {"total_size": total}, "weight_map": weight_map})
    return folder


# --------------------------------------------------------------------------- all-MiniLM-L6-v2
def build_minilm_snapshot(folder, seed: int, steps: int = 0) -> Path:
    """A ``sentence-transformers/all-MiniLM-L6-v2`` snapshot: the workflow's tiny sentence encoder
    (BERT, mean pooling, Normalize; seeded, trained `steps` steps on paraphrase pairs, none by default)."""
    from curate.scoring.sentence import build_tiny_sentence_encoder, scene_paraphrase_pairs

    folder = Path(folder)
    build_tiny_sentence_encoder(folder, scene_paraphrase_pairs(400, seed), seed=seed, steps=steps)
    modules = json.loads((folder / "modules.json").read_text())
    if [m["type"].rsplit(".", 1)[-1] for m in modules] != ["Transformer", "Pooling", "Normalize"]:
        raise RuntimeError(f"{folder}: modules {modules} are not all-MiniLM-L6-v2's")
    return folder
