"""The SIEVE captioner (docs/algorithms.md §4) through transformers' BLIP and GIT classes.

One code path for the real and the tiny captioners: a folder holding a
``BlipForConditionalGeneration`` and its ``BlipProcessor``, or a ``GitForCausalLM`` and its
``GitProcessor`` (the folder's ``config.json`` says which: `captioner_family`), is loaded by
`load_captioner` and sampled by `generate_captions`.

- Real scale: the paper's captioner is BLIP ViT-B/16 *pretrained on 14M* curated pairs
  (``model_base_14M.pth`` of salesforce/BLIP, converted to ``BlipForConditionalGeneration`` by the
  workflow's ``convert_model`` rule, `curate.scoring.itm.convert_blip_checkpoint` with ``target=
  "blip_caption"``, with the tokenizer of the Hub's ``Salesforce/blip-image-captioning-base``; it is
  pretrained at 224 px); its Table 2 ablation is ``model_base.pth`` (129M) the same way, and its
  Table 3 compares ``microsoft/git-base`` (GIT, 10M pairs), a Hub snapshot. The Hub's
  ``Salesforce/blip-image-captioning-base`` itself is fine-tuned on COCO and preprocesses at
  384 px: not the paper's checkpoint. ``load_captioner(source, image_size=224)`` swaps in
  CLIP-style preprocessing (§4) for any of them (a ``source: pretrained`` captioner's
  ``image_size``); `generate_captions` interpolates the position embeddings when the size differs
  from the model's.
- GIT is prompted and sampled with Sieve's settings as BLIP is: its decoder starts from
  ``[CLS] a picture of`` (GIT's bos is BERT's ``[CLS]``, its eos ``[SEP]``), both lengths count
  those prompt tokens (the image tokens GIT puts before the text are not in ``input_ids``), and
  the prompt's characters are cut from the decoded text.
- Tests and the synthetic workflow: `build_tiny_captioner` trains a tiny BLIP (64 px, 2+2
  layers, a WordPiece tokenizer built locally) on curated pairs and saves it in the same layout.

Generation, as in BLIP's ``generate(sample=True)`` which Sieve calls: the prompt
``"a picture of "`` is tokenized as ``[CLS] a picture of [SEP]``; ``BlipForConditionalGeneration
.generate`` replaces ``[CLS]`` by the decoder's bos token ``[DEC]`` and drops the final ``[SEP]``,
so the decoder starts from ``[DEC] a picture of`` (4 tokens with BERT's vocabulary) and stops at
``[SEP]`` (the text config's ``sep_token_id`` is passed as eos). ``min_length`` / ``max_length``
are passed to transformers' ``generate`` explicitly, and for a decoder-only generation
(``BlipTextLMHeadModel``) transformers counts both over the WHOLE sequence, prompt included
(``_prepare_generated_length`` only adds the prompt length to a *default* max_length;
``MinLengthLogitsProcessor`` compares ``input_ids.shape[-1]``, prompt included): every returned
sequence has at most ``max_length`` = 20 tokens ([DEC] + prompt + caption + [SEP]) and its
``[SEP]`` (if any) sits at index >= ``min_length`` = 5, i.e. >= 1 caption token after a 4-token
prompt. Same as the original BLIP code, which also hands these values to ``generate``.

The decoded text (special tokens skipped) has the prompt's ``len(prompt)`` characters cut off, as
BLIP's ``caption[len(self.prompt):]`` does.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)

__all__ = [
    "CaptionSettings",
    "CAPTION_SETTINGS",
    "CLIP_MEAN",
    "CLIP_STD",
    "CAPTIONER_FAMILIES",
    "captioner_family",
    "clip_style_image_processor",
    "load_captioner",
    "batch_seed",
    "generate_captions",
    "generate_caption_ids",
    "train_wordpiece_tokenizer",
    "build_tiny_captioner",
]

#: OpenAI CLIP normalisation (BLIP uses the same constants).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

#: BERT special tokens plus BLIP's decoder bos ``[DEC]`` and encoder token ``[ENC]``.
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", "[ENC]")


@dataclass(frozen=True)
class CaptionSettings:
    """Sampling settings of the Sieve captioner (§4).

    ``min_length`` and ``max_length`` count the prompt tokens (the bos ``[DEC]`` included) and
    the final ``[SEP]``: they are transformers' ``generate`` lengths of a decoder-only model.
    """

    prompt: str = "a picture of "
    do_sample: bool = True
    top_p: float = 0.9
    top_k: int = 50
    temperature: float = 1.0
    repetition_penalty: float = 1.1
    min_length: int = 5
    max_length: int = 20
    num_captions: int = 8

    def generate_kwargs(self) -> dict:
        """The keyword arguments for ``BlipForConditionalGeneration.generate``."""
        return {
            "do_sample": self.do_sample,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "temperature": self.temperature,
            "repetition_penalty": self.repetition_penalty,
            "min_length": self.min_length,
            "max_length": self.max_length,
            "num_return_sequences": self.num_captions,
        }

    def as_dict(self) -> dict:
        return asdict(self)


CAPTION_SETTINGS = CaptionSettings()


def _source_path(source) -> str:
    s = str(source)
    return s[len("local-dir:") :] if s.startswith("local-dir:") else s


def clip_style_image_processor(image_size: int):
    """A ``BlipImageProcessor`` preprocessing as for CLIP (§4): resize the shortest edge to
    ``image_size`` (bicubic), center crop ``image_size`` square, rescale to [0, 1], normalise
    with CLIP mean/std. (BLIP's own processors resize to a square without cropping.)"""
    from transformers import BlipImageProcessor
    from transformers.image_utils import PILImageResampling

    return BlipImageProcessor(
        do_resize=True,
        size={"shortest_edge": int(image_size)},
        resample=PILImageResampling.BICUBIC,
        do_center_crop=True,
        crop_size={"height": int(image_size), "width": int(image_size)},
        do_rescale=True,
        do_normalize=True,
        image_mean=list(CLIP_MEAN),
        image_std=list(CLIP_STD),
        do_convert_rgb=True,
    )


#: A captioner folder's transformers ``model_type`` -> its classes (model, processor).
CAPTIONER_FAMILIES = {
    "blip": ("BlipForConditionalGeneration", "BlipProcessor"),
    "git": ("GitForCausalLM", "GitProcessor"),
}


def captioner_family(source) -> str:
    """``blip`` or ``git``: the ``model_type`` of a captioner folder's ``config.json``."""
    config = Path(_source_path(source)) / "config.json"
    if not config.is_file():
        raise FileNotFoundError(
            f"{config.parent}: no config.json (not a transformers captioner folder; an original BLIP "
            "checkpoint is converted first, models.<name>.convert: blip_caption)"
        )
    model_type = json.loads(config.read_text()).get("model_type")
    if model_type not in CAPTIONER_FAMILIES:
        raise ValueError(f"{config}: model_type {model_type!r} is not a captioner ({', '.join(CAPTIONER_FAMILIES)})")
    return model_type


def load_captioner(source, image_size: int | None = None, device: str = "cpu"):
    """``(model.eval(), processor)`` from a captioner folder (``local-dir:`` prefix optional).

    The family's ``from_pretrained(source)`` (`CAPTIONER_FAMILIES`): BLIP (the paper's BLIP
    ViT-B/16 14M or 129M pretraining checkpoint converted to this layout, the tiny captioner) or
    GIT (``microsoft/git-base``'s snapshot). Nothing is downloaded when ``HF_HUB_OFFLINE=1``.
    ``image_size``: replace the processor's image preprocessing by `clip_style_image_processor`
    at that size (§4: 224 for the real captioners); None keeps the saved one (the tiny
    captioner saves CLIP-style preprocessing at its own size).
    """
    import transformers

    path = _source_path(source)
    model_class, processor_class = (getattr(transformers, c) for c in CAPTIONER_FAMILIES[captioner_family(path)])
    model = model_class.from_pretrained(path).to(device)
    processor = processor_class.from_pretrained(path)
    if image_size is not None:
        processor = processor_class(
            image_processor=clip_style_image_processor(image_size), tokenizer=processor.tokenizer
        )
    return model.eval(), processor


def batch_seed(seed: int, batch_index: int) -> int:
    """The torch seed of one batch: a function of ``(seed, batch_index)`` only."""
    return int(np.random.SeedSequence([int(seed), int(batch_index)]).generate_state(1, np.uint64)[0] % (2**63 - 1))


def _prompt_inputs(model, processor, n: int, prompt: str) -> dict:
    """The decoder's prompt for ``n`` images. BLIP: ``[CLS] prompt [SEP]`` (its ``generate`` puts
    ``[DEC]`` in place of ``[CLS]`` and drops the ``[SEP]``); GIT: ``[CLS] prompt``, its bos
    and the prompt's tokens, as GIT's own conditional captioning is prompted."""
    tokenizer = processor.tokenizer
    if model.config.model_type == "git":
        ids = [tokenizer.cls_token_id, *tokenizer(prompt, add_special_tokens=False)["input_ids"]]
        input_ids = torch.tensor([ids] * n, dtype=torch.long)
        return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)}
    enc = tokenizer([prompt] * n, return_tensors="pt", padding=True)
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


def generate_caption_ids(
    model, processor, images: Sequence, seed: int, batch_index: int = 0, settings: CaptionSettings = CAPTION_SETTINGS
) -> torch.Tensor:
    """Token ids of ``settings.num_captions`` sampled captions for each image of ONE batch.

    Returns the ``(len(images) * K) x L`` sequences ``generate`` produced (rows of image i are
    ``i*K .. i*K+K-1``), each ``[DEC] prompt caption [SEP] [PAD]...`` with ``L <= max_length``.
    Sampling is seeded with ``torch.manual_seed(batch_seed(seed, batch_index))`` inside
    ``torch.random.fork_rng`` (the global RNG state is left untouched).
    """
    device = next(model.parameters()).device
    pix = processor.image_processor(images=list(images), return_tensors="pt")["pixel_values"]
    pix = pix.to(device=device, dtype=next(model.parameters()).dtype)
    inputs = {k: v.to(device) for k, v in _prompt_inputs(model, processor, len(images), settings.prompt).items()}
    interpolate = tuple(pix.shape[-2:]) != (model.config.vision_config.image_size,) * 2
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(batch_seed(seed, batch_index))
        with torch.no_grad():
            out = model.generate(
                pixel_values=pix, interpolate_pos_encoding=interpolate, **inputs, **settings.generate_kwargs()
            )
    return out.cpu()


def _strip_prompt(text: str, prompt: str) -> str:
    # BLIP: caption[len(self.prompt):] on the decoded text
    return text[len(prompt) :]


def generate_captions(
    model, processor, images: Sequence, seed: int, settings: CaptionSettings = CAPTION_SETTINGS, batch_size: int = 32
) -> list[list[str]]:
    """``settings.num_captions`` (8) sampled captions per image, the prompt stripped from each.

    Seeded: images are cut into consecutive batches of ``batch_size``; batch b samples with
    ``torch.manual_seed(batch_seed(seed, b))``. The captions of a batch therefore depend only on
    ``seed``, ``batch_size``, the batch's own images and its index in THIS call, never on other
    calls or on what ran before (same seed ⇒ same captions). A workflow that captions a pool in
    chunks (e.g. one call per shard) should derive ``seed`` from (global seed, chunk id) so
    chunks may run in any order. Sampling is reproducible on one device/software stack; CPU and
    GPU draws differ.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    K = settings.num_captions
    images = list(images)
    out: list[list[str]] = []
    for b, start in enumerate(range(0, len(images), batch_size)):
        chunk = images[start : start + batch_size]
        ids = generate_caption_ids(model, processor, chunk, seed, b, settings)
        texts = processor.tokenizer.batch_decode(ids, skip_special_tokens=True)
        caps = [_strip_prompt(t, settings.prompt) for t in texts]
        out.extend(caps[i * K : (i + 1) * K] for i in range(len(chunk)))
    return out


# ---------------------------------------------------------------------------------------------
# Tiny captioner
# ---------------------------------------------------------------------------------------------


def train_wordpiece_tokenizer(
    texts: Iterable[str], vocab_size: int = 400, extra_texts: Sequence[str] = (), blip_tokens: bool = True
):
    """A lower-casing BERT WordPiece tokenizer fitted to ``texts`` (+ ``extra_texts``), wrapped as
    transformers' ``BertTokenizerFast``.

    Ids 0..4 are ``[PAD] [UNK] [CLS] [SEP] [MASK]``; with ``blip_tokens`` ids 5, 6 are ``[DEC]``
    (the ``bos_token``) and ``[ENC]``, as BLIP's tokenizer (BERT's vocabulary +
    ``bos_token='[DEC]'`` + ``[ENC]``). Then every character seen, as a word start and as a
    ``##`` continuation (so nothing seen maps to ``[UNK]``), then whole words by decreasing
    count (ties by spelling) up to ``vocab_size``. Words are split with the ``tokenizers``
    library's BERT normalizer and pre-tokenizer, as the tokenizer itself does.

    The vocabulary is counted here rather than by ``tokenizers.trainers.WordPieceTrainer``: that
    trainer breaks ties in hash-map order, so two runs on the same texts give different
    vocabularies (even different sizes) and the tiny models would not be reproducible.
    """
    from collections import Counter

    from tokenizers import normalizers, pre_tokenizers
    from transformers import BertTokenizerFast

    normalizer = normalizers.BertNormalizer(lowercase=True)
    pre = pre_tokenizers.BertPreTokenizer()
    counts: Counter = Counter()
    for text in [*texts, *extra_texts]:
        counts.update(w for w, _ in pre.pre_tokenize_str(normalizer.normalize_str(str(text))))
    specials = list(SPECIAL_TOKENS if blip_tokens else SPECIAL_TOKENS[:5])
    chars = sorted({ch for w in counts for ch in w})
    tokens = specials + chars + [f"##{ch}" for ch in chars]
    if len(tokens) > vocab_size:
        raise ValueError(f"vocab_size {vocab_size} is below the {len(tokens)} special and character tokens")
    seen = set(tokens)
    words = sorted((w for w in counts if w not in seen), key=lambda w: (-counts[w], w))
    tokens += words[: int(vocab_size) - len(tokens)]
    vocab = {t: i for i, t in enumerate(tokens)}
    if not blip_tokens:
        return BertTokenizerFast(vocab=vocab, do_lower_case=True)
    return BertTokenizerFast(vocab=vocab, do_lower_case=True, bos_token="[DEC]", extra_special_tokens=["[ENC]"])


def tiny_blip_config(
    tokenizer,
    image_size: int = 64,
    patch_size: int = 16,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 2,
    max_positions: int = 64,
):
    """A tiny ``BlipConfig`` whose text ids follow ``tokenizer`` (BLIP's conventions: decoder
    bos = ``[DEC]``, eos used by generate = ``sep_token_id`` = ``[SEP]``, pad = ``[PAD]``)."""
    from transformers import BlipConfig

    text = dict(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        encoder_hidden_size=hidden,
        intermediate_size=4 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        max_position_embeddings=max_positions,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.sep_token_id,
        sep_token_id=tokenizer.sep_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    vision = dict(
        hidden_size=hidden,
        intermediate_size=4 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        image_size=image_size,
        patch_size=patch_size,
        dropout=0.0,
        attention_dropout=0.0,
    )
    return BlipConfig(text_config=text, vision_config=vision, projection_dim=hidden)


def caption_training_batch(tokenizer, captions: Sequence[str], prompt: str, max_length: int, bos_token_id: int):
    """Decoder inputs and labels as BLIP's captioning fine-tuning builds them: text = prompt +
    caption, ``[CLS]`` replaced by ``[DEC]``, labels = input_ids with padding and the prompt
    tokens set to -100 (the loss covers the caption and the final ``[SEP]``)."""
    enc = tokenizer(
        [prompt + c for c in captions], padding="longest", truncation=True, max_length=max_length, return_tensors="pt"
    )
    input_ids = enc["input_ids"].clone()
    input_ids[:, 0] = bos_token_id
    labels = input_ids.masked_fill(enc["attention_mask"] == 0, -100)
    prompt_len = len(tokenizer(prompt)["input_ids"]) - 1  # [CLS]/[DEC] + prompt, without [SEP]
    labels[:, :prompt_len] = -100
    return input_ids, enc["attention_mask"], labels


def build_tiny_captioner(
    out_dir,
    train_pairs: Iterable,
    seed: int,
    steps: int = 300,
    batch_size: int = 32,
    lr: float = 3e-3,
    image_size: int = 64,
    patch_size: int = 16,
    hidden: int = 64,
    layers: int = 2,
    vocab_size: int = 400,
    settings: CaptionSettings = CAPTION_SETTINGS,
) -> dict:
    """Build, train and save a tiny BLIP captioner in ``out_dir`` (loadable by `load_captioner`).

    ``train_pairs``: (PIL image, caption) pairs, e.g. `iter_webdataset_pairs` over the curated
    set's shards. A WordPiece tokenizer is fitted to the captions (and the prompt), a tiny
    ``BlipForConditionalGeneration`` is built from `tiny_blip_config`, and trained for ``steps``
    AdamW steps of captioning loss (`caption_training_batch`) on random batches. Deterministic
    given ``seed`` on one software stack (torch seeded inside ``fork_rng``, one thread is the
    caller's choice). ``steps=0`` saves the untrained model. Returns a summary dict.
    """
    from transformers import BlipForConditionalGeneration, BlipProcessor

    pairs = list(train_pairs)
    if not pairs:
        raise ValueError("build_tiny_captioner needs at least one training pair")
    images = [im for im, _ in pairs]
    captions = [str(c) for _, c in pairs]
    tokenizer = train_wordpiece_tokenizer(captions, vocab_size=vocab_size, extra_texts=[settings.prompt])
    processor = BlipProcessor(image_processor=clip_style_image_processor(image_size), tokenizer=tokenizer)
    config = tiny_blip_config(
        tokenizer,
        image_size=image_size,
        patch_size=patch_size,
        hidden=hidden,
        layers=layers,
        max_positions=max(64, settings.max_length),
    )
    losses: list[float] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = BlipForConditionalGeneration(config)
        pix = processor.image_processor(images=images, return_tensors="pt")["pixel_values"]
        input_ids, attn, labels = caption_training_batch(
            tokenizer, captions, settings.prompt, config.text_config.max_position_embeddings, tokenizer.bos_token_id
        )
        gen = torch.Generator().manual_seed(int(seed))
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
        model.train()
        n = len(pairs)
        for step in range(int(steps)):
            idx = torch.randint(n, (min(batch_size, n),), generator=gen)
            ii, am, lab = input_ids[idx], attn[idx], labels[idx]
            width = int(am.sum(1).max())
            out = model(
                pixel_values=pix[idx], input_ids=ii[:, :width], attention_mask=am[:, :width], labels=lab[:, :width]
            )
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            losses.append(float(out.loss.detach()))
    model.eval()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return {
        "out_dir": str(out_dir),
        "n_pairs": len(pairs),
        "steps": int(steps),
        "vocab_size": len(tokenizer),
        "n_parameters": int(sum(p.numel() for p in model.parameters())),
        "first_loss": losses[0] if losses else None,
        "final_loss": float(np.mean(losses[-10:])) if losses else None,
        "settings": settings.as_dict(),
    }


# ---------------------------------------------------------------------------------------------
# Captioning a pool chunk (the workflow's caption rule)
# ---------------------------------------------------------------------------------------------


def caption_pool_chunk(
    model_dir,
    tar_paths: Sequence,
    seed: int,
    batch_size: int = 32,
    settings: CaptionSettings = CAPTION_SETTINGS,
    image_size: int | None = None,
    device: str = "cpu",
):
    """Caption every kept sample of a pool chunk's shards (§4) on ``device`` (the job's:
    `curate.devices.job_device`): ``settings.num_captions``
    seeded nucleus captions per image, the images preprocessed CLIP-style at ``image_size`` (None:
    the processor saved with the model; `load_captioner`).

    Returns ``(DataFrame[uid, text, captions], report)``: one row per kept sample in reading
    order, ``text`` its alt-text, ``captions`` the list of captions (prompt stripped);
    ``report`` is the chunk's `curate.data.shards.SkipReport` (bad samples are counted, not
    captioned).
    """
    import pandas as pd

    from curate.data.shards import SkipReport, iter_pool_batches

    model, processor = load_captioner(model_dir, image_size=image_size, device=device)
    report = SkipReport()
    uids: list[str] = []
    texts: list[str] = []
    captions: list[list[str]] = []
    batches = iter_pool_batches(tar_paths, report, batch_size, desc="caption")
    for batch_index, batch in enumerate(batches):
        uids.extend(s.uid for s in batch)
        texts.extend(s.text for s in batch)
        # one generate call per batch, seeded by (seed, batch index): same seed, same captions
        captions.extend(
            generate_captions(
                model,
                processor,
                [s.image for s in batch],
                seed=batch_seed(seed, batch_index),
                settings=settings,
                batch_size=len(batch),
            )
        )
    frame = pd.DataFrame(
        {
            "uid": pd.Series(uids, dtype=object),
            "text": pd.Series(texts, dtype=object),
            "captions": pd.Series(captions, dtype=object),
        }
    )
    return frame, report.as_dict()
