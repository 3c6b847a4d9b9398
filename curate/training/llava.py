"""LLaVA projector pretraining with per-sample loss weights (MoS Table 1, ``trainer: llava``).

One code path through transformers' LLaVA classes at both scales:

- `assemble_llava` builds a ``LlavaForConditionalGeneration`` from a vision tower folder
  (``CLIPVisionModel.from_pretrained``) and a causal language model folder with its tokenizer
  (``AutoModelForCausalLM`` / ``AutoTokenizer.from_pretrained``), a fresh two-layer GELU projector
  between them (LLaVA-1.5's ``mlp2x_gelu``), and saves it with its ``LlavaProcessor``
  (``save_pretrained``). Real scale: CLIP ViT-L/14-336 and Vicuna converted folders.
- `build_tiny_parts` builds the tiny pieces locally: a word-level tokenizer fitted to captions, a
  tiny ``LlamaForCausalLM`` trained by language modelling on those captions (the analogue of the
  pretrained LLM) and a tiny ``CLIPVisionModel`` (seeded, untrained: the projector has to learn
  to read it), each saved with ``save_pretrained`` and loaded back by `assemble_llava`.
- `train_projector`: LLaVA's stage-1 pretraining: everything frozen except the projector; a
  sample is ``<s> <image>*n caption </s>`` with the loss on the caption tokens only. Each
  sample's loss is the mean over its caption tokens; the batch loss is ``sum w_i l_i / sum w_i``
  with the sample weights of the reshard (1 where absent): uniform weights give the plain mean,
  a zero weight leaves the sample out. AdamW, linear warm-up over ``warmup_ratio`` of the steps,
  then cosine (LLaVA's schedule), one pass per epoch through the seeded reader of
  `curate.training.weighted_clip.read_samples`; ``micro_batch_size`` accumulates gradients over
  micro-batches (same update as one batch), ``precision: amp_bf16`` autocasts on CUDA.
- `generate_captions` (greedy) and `cider` (pycocoevalcap's CIDEr-D) evaluate the captioner.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import torch

from curate.training.loop import decode_rgb, lr_at, read_samples
from curate.training.trainers import complete_recipe

log = logging.getLogger(__name__)

IMAGE_TOKEN = "<image>"
SPECIAL = ("<pad>", "<unk>", "<s>", "</s>", IMAGE_TOKEN)


# ---------------------------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------------------------


def word_tokenizer(texts):
    """A lower-casing word-level ``PreTrainedTokenizerFast`` over `texts` (punctuation split off)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(list(texts), trainers.WordLevelTrainer(special_tokens=list(SPECIAL)))
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        extra_special_tokens=[IMAGE_TOKEN],
    )


def caption_ids(tokenizer, caption: str) -> list[int]:
    return tokenizer(caption, add_special_tokens=False)["input_ids"]


def build_tiny_parts(
    out_dir,
    captions,
    seed: int,
    lm_steps: int = 300,
    batch_size: int = 64,
    lr: float = 3e-3,
    hidden: int = 64,
    layers: int = 2,
    image_size: int = 64,
    patch_size: int = 16,
) -> dict:
    """Save a tiny vision tower (``out_dir/vision``) and a tiny causal LM trained on `captions`
    with its tokenizer (``out_dir/language_model``). Deterministic given `seed`."""
    from transformers import CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM

    captions = [str(c) for c in captions]
    tokenizer = word_tokenizer(captions)
    out_dir = Path(out_dir)
    losses = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        vision = CLIPVisionModel(
            CLIPVisionConfig(
                hidden_size=hidden,
                intermediate_size=2 * hidden,
                num_hidden_layers=layers,
                num_attention_heads=4,
                image_size=image_size,
                patch_size=patch_size,
            )
        )
        lm = LlamaForCausalLM(
            LlamaConfig(
                vocab_size=len(tokenizer),
                hidden_size=hidden,
                intermediate_size=2 * hidden,
                num_hidden_layers=layers,
                num_attention_heads=4,
                num_key_value_heads=4,
                max_position_embeddings=128,
                bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )
        )
        sequences = [[tokenizer.bos_token_id] + caption_ids(tokenizer, c) + [tokenizer.eos_token_id] for c in captions]
        gen = torch.Generator().manual_seed(int(seed))
        opt = torch.optim.AdamW(lm.parameters(), lr=lr, weight_decay=0.0)
        lm.train()
        for _ in range(int(lm_steps)):
            idx = torch.randint(len(sequences), (min(batch_size, len(sequences)),), generator=gen).tolist()
            ids, attn, labels = _pad([sequences[i] for i in idx], tokenizer.pad_token_id, [1] * len(idx))
            loss = lm(input_ids=ids, attention_mask=attn, labels=labels).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
    vision.save_pretrained(out_dir / "vision")
    lm.save_pretrained(out_dir / "language_model")
    tokenizer.save_pretrained(out_dir / "language_model")
    return {
        "vocab_size": len(tokenizer),
        "lm_steps": int(lm_steps),
        "lm_first_loss": losses[0] if losses else None,
        "lm_final_loss": float(np.mean(losses[-10:])) if losses else None,
    }


def _pad(sequences, pad_id: int, n_prefix: list[int]):
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` (-100 on each sequence's
    first ``n_prefix[i]`` tokens and on padding)."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(sequences), width), dtype=torch.long)
    labels = torch.full((len(sequences), width), -100, dtype=torch.long)
    for i, (seq, k) in enumerate(zip(sequences, n_prefix)):
        ids[i, : len(seq)] = torch.tensor(seq)
        attn[i, : len(seq)] = 1
        labels[i, k : len(seq)] = torch.tensor(seq[k:])
    return ids, attn, labels


def assemble_llava(vision_dir, language_model_dir, out_dir, seed: int, image_size: int | None = None) -> Path:
    """A LLaVA (``LlavaForConditionalGeneration`` + ``LlavaProcessor``) from a vision tower folder
    and a causal LM folder (with its tokenizer), with a fresh seeded projector; saved to `out_dir`."""
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        CLIPImageProcessor,
        CLIPVisionModel,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    from curate.scoring.captioning import CLIP_MEAN, CLIP_STD

    vision = CLIPVisionModel.from_pretrained(vision_dir)
    lm = AutoModelForCausalLM.from_pretrained(language_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(language_model_dir)
    if IMAGE_TOKEN not in tokenizer.get_vocab():
        tokenizer.add_tokens([IMAGE_TOKEN], special_tokens=True)
        lm.resize_token_embeddings(len(tokenizer))
    vc = vision.config
    size = image_size or vc.image_size
    n_image_tokens = (size // vc.patch_size) ** 2
    config = LlavaConfig(
        vision_config=vc.to_dict(),
        text_config=lm.config.to_dict(),
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        image_seq_length=n_image_tokens,
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
        projector_hidden_act="gelu",
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = LlavaForConditionalGeneration(config)
    model.model.vision_tower.load_state_dict(vision.state_dict())
    model.model.language_model.load_state_dict(lm.model.state_dict())
    model.lm_head.load_state_dict(lm.lm_head.state_dict())
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(
            size={"shortest_edge": size},
            crop_size={"height": size, "width": size},
            image_mean=list(CLIP_MEAN),
            image_std=list(CLIP_STD),
        ),
        tokenizer=tokenizer,
        patch_size=vc.patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
    )
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir


def load_llava(model_dir):
    """``(model.eval(), processor)`` from a folder written by `assemble_llava` / `train_projector`."""
    from transformers import LlavaForConditionalGeneration, LlavaProcessor

    return LlavaForConditionalGeneration.from_pretrained(model_dir).eval(), LlavaProcessor.from_pretrained(model_dir)


# ---------------------------------------------------------------------------------------------
# Projector pretraining
# ---------------------------------------------------------------------------------------------


def _prefix(model, tokenizer) -> list[int]:
    return [tokenizer.bos_token_id] + [model.config.image_token_index] * int(model.config.image_seq_length)


def weighted_caption_loss(
    logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor, total_weight: torch.Tensor | None = None
) -> torch.Tensor | None:
    """``sum_i w_i l_i / sum_i w_i`` with ``l_i`` the mean next-token cross-entropy over sample i's
    labelled tokens; None when every weight is 0. With gradient accumulation the denominator is
    the whole batch's `total_weight`, so the micro-batches' losses add up to the batch's."""
    total = weights.sum() if total_weight is None else total_weight
    if not total > 0:
        return None
    shift_logits = logits[:, :-1].float()
    shift_labels = labels[:, 1:]
    ce = torch.nn.functional.cross_entropy(
        shift_logits.reshape(-1, shift_logits.shape[-1]), shift_labels.reshape(-1), ignore_index=-100, reduction="none"
    ).view(shift_labels.shape)
    mask = (shift_labels != -100).float()
    per_sample = (ce * mask).sum(1) / mask.sum(1).clamp(min=1)
    return (weights * per_sample).sum() / total


def train_projector(recipe: dict, shard_dir, base_dir, out_dir, seed: int, threads: int = 1, scratch=None) -> dict:
    """LLaVA stage-1 pretraining of the projector of the LLaVA in `base_dir` on the reshard in
    `shard_dir`; the result is saved to `out_dir` (model + processor). Returns a summary. With
    `scratch`, a checkpoint (the projector, the optimiser, the counters, the random state) is saved
    every ``checkpoint_every`` steps and at every epoch's end, and a rerun resumes from the latest:
    the same weights as an uninterrupted run (`curate.training.resume`)."""

    from curate.data.reshard import reshard_contents
    from curate.training.resume import (
        Checkpoints,
        finish_scratch,
        prepare_scratch,
        reshard_fingerprint,
        rng_state,
        set_rng_state,
    )

    recipe = complete_recipe(recipe)
    shards, meta = reshard_contents(shard_dir)
    n_samples = int(meta["written"])
    batch_size = int(recipe["batch_size"])
    steps_per_epoch = max(1, math.ceil(n_samples / batch_size))
    total = steps_per_epoch * int(recipe["epochs"])
    warmup = int(math.ceil(float(recipe["warmup_ratio"]) * total))
    torch.set_num_threads(int(threads))
    torch.manual_seed(int(seed))
    device = torch.device(recipe["device"])
    model, processor = load_llava(base_dir)
    model.to(device)
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith("model.multi_modal_projector"))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=float(recipe["lr"]), weight_decay=float(recipe["wd"]))
    tokenizer = processor.tokenizer
    prefix = _prefix(model, tokenizer)
    model.train()
    step, skipped, losses = 0, 0, []

    def run(batch):
        nonlocal step, skipped
        for group in opt.param_groups:
            group["lr"] = lr_at(step, total, warmup, float(recipe["lr"]))
        step += 1
        all_weights = torch.tensor([w for _, _, w in batch], dtype=torch.float32, device=device)
        total_weight = all_weights.sum()
        if not total_weight > 0:
            skipped += 1
            return
        opt.zero_grad(set_to_none=True)
        batch_loss = 0.0
        for start in range(0, len(batch), micro):
            part = batch[start : start + micro]
            pix = processor.image_processor(images=[image for image, _, _ in part], return_tensors="pt")[
                "pixel_values"
            ].to(device)
            seqs = [prefix + caption_ids(tokenizer, t)[:max_text] + [tokenizer.eos_token_id] for _, t, _ in part]
            ids, attn, labels = _pad(seqs, tokenizer.pad_token_id, [len(prefix)] * len(seqs))
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=precision == "amp_bf16"):
                logits = model(input_ids=ids.to(device), attention_mask=attn.to(device), pixel_values=pix).logits
            loss = weighted_caption_loss(logits, labels.to(device), all_weights[start : start + micro], total_weight)
            loss.backward()
            batch_loss += float(loss.detach())
        opt.step()
        losses.append(batch_loss)
        if step % 20 == 0 or step == total:
            log.info("step %d/%d loss %.4f", step, total, losses[-1])

    max_text = int(recipe["max_text_tokens"])
    micro = int(recipe["micro_batch_size"] or batch_size)
    precision = recipe["precision"]
    if precision not in ("fp32", "amp_bf16"):
        raise ValueError(f"llava precision must be fp32 or amp_bf16, got {precision!r}")

    def batches(epoch):
        batch = []
        for data, text, weight in read_samples(
            shards, order_seed=seed * 100_003 + epoch, shuffle_buffer=int(recipe["shuffle_buffer"])
        ):
            image = decode_rgb(data)
            if image is None:  # an image that does not decode is skipped, as open_clip's loader does
                continue
            batch.append((image, text, weight))
            if len(batch) == batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    if scratch is not None:
        scratch, _ = prepare_scratch(
            scratch,
            {"recipe": recipe, "seed": int(seed), "base": str(base_dir), "data": reshard_fingerprint(shard_dir)},
        )
    checkpoints = Checkpoints(scratch, recipe["checkpoint_every"])
    trained = [name for name, p in model.named_parameters() if p.requires_grad]
    start_epoch, skip, rng = 0, 0, None
    state = checkpoints.load()
    if state is not None:
        model.load_state_dict(state["projector"], strict=False)
        opt.load_state_dict(state["optimizer"])
        step, skipped, losses = state["step"], state["skipped"], state["losses"]
        start_epoch, skip, rng = state["epoch"], state["batches_done"], state["rng"]

    def save(epoch, batches_done):
        weights = model.state_dict()
        checkpoints.save(
            {
                "projector": {name: weights[name] for name in trained},  # the only trained part
                "optimizer": opt.state_dict(),
                "step": step,
                "skipped": skipped,
                "losses": losses,
                "epoch": epoch,
                "batches_done": batches_done,
                "rng": rng_state(),
            }
        )

    epochs = int(recipe["epochs"])
    for epoch in range(start_epoch, epochs):
        stream, done = batches(epoch), 0
        for _ in range(skip):  # a resumed epoch: its data order up to where the checkpoint was taken
            next(stream, None)
            done += 1
        if rng is not None:  # and the random state it was taken with
            set_rng_state(rng)
            rng, skip = None, 0
        for batch in stream:
            run(batch)
            done += 1
            if checkpoints.due(step, end_of_epoch=False) and step < total:
                save(epoch, done)
        if checkpoints.due(step, end_of_epoch=True) and epoch + 1 < epochs:
            save(epoch + 1, 0)
    model.eval()
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    finish_scratch(scratch)
    summary = {
        "samples": n_samples,
        "steps": step,
        "skipped_steps": skipped,
        "first_loss": losses[0] if losses else None,
        "final_loss": losses[-1] if losses else None,
    }
    (out_dir / "train_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


# ---------------------------------------------------------------------------------------------
# Captioning evaluation
# ---------------------------------------------------------------------------------------------
