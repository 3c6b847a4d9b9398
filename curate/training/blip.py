"""BLIP pretraining with per-sample loss weights (MoS Table 3, ``trainer: blip``), tiny scale.

BLIP (Li et al. 2022) pretrains one model with three objectives: image-text contrastive (ITC,
unimodal image and text encoders), image-text matching (ITM, the text encoder with
cross-attention to the image, on the batch's positives and on hard negatives drawn from the ITC
similarities) and language modelling (LM, the text decoder captions the image). The real recipe
runs salesforce-lavis (`curate.training.lavis_blip`, its own env); this module is the tiny analogue
through transformers' BLIP classes, and holds the loss weighting both share.

- Model (`TinyBlip`): a ``BlipForImageTextRetrieval`` (vision encoder, text encoder with
  cross-attention, ITC projections, ITM head) and a ``BlipForConditionalGeneration`` whose vision
  model IS the retrieval model's (one vision encoder, as in BLIP), plus BLIP's learnable ITC
  temperature (0.07, clamped to [0.001, 0.5]). Saved with ``save_pretrained`` as
  ``retrieval/``, ``captioner/``, the ``BlipProcessor`` and ``itc.json``; `load_blip` reads it
  back with ``from_pretrained``. Text: ``[CLS]`` starts the ITC text, ``[ENC]`` the ITM text,
  ``[DEC]`` the decoder's (BLIP's tokens); the tiny tokenizer is a WordPiece one fitted to a
  curated set's captions (`curate.scoring.captioning.train_wordpiece_tokenizer`).
- Loss, with per-sample weights ``w`` (the reshard's; 1 where absent): ITC is the weighted CLIP
  loss (`curate.selection.flyt.weighted_clip_loss` with ``w / sum w``: the weights sit in the softmax
  denominators); ITM is the cross-entropy over the 3N pairs (N positives, each text with a hard
  negative image, each image with a hard negative text), each pair weighted by the weight of the
  sample it belongs to, over ``sum`` of those weights; LM is the label-smoothed (0.1, BLIP's)
  token cross-entropy, each token weighted by its sample's weight, over the weighted token count.
  Hard negatives are drawn as BLIP draws them (multinomial over ``softmax(sim) + 1e-4``, the
  diagonal zeroed), never from a zero-weight sample. Uniform weights give BLIP's unweighted
  losses exactly; a zero weight gives what the batch without that sample gives (tested).
  Simplifications at tiny scale: no momentum encoder and queue (ITC is in-batch, without
  distillation), decoder and encoder do not share layers, and the ITC text feature is the mean
  over the text's tokens rather than [CLS] (a from-scratch [CLS] carries too little of the
  sentence for ITC to start; BLIP's comes from pretrained BERT).
- Optimiser and schedule as LAVIS's ``linear_warmup_step_lr``: AdamW (betas 0.9/0.999, weight
  decay on matrices only), lr ``max(min_lr, lr * lr_decay_rate ** epoch)``, linear warm-up from
  ``warmup_lr`` over the first ``warmup`` steps of epoch 0; full batches only.
- Evaluation (`curate.evaluation.blip`): retrieval and zero-shot classification by ITC features,
  captioning CIDEr of greedy captions, synthetic VQA by ranking each question's candidate
  statements by the decoder's log-likelihood given the image; VQA v2, NLVR2 and RefCOCO+ after
  BLIP's task fine-tuning of copies of the model's parts (`curate.evaluation.blip_tasks`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from curate.training.trainers import complete_recipe

log = logging.getLogger(__name__)

LABEL_SMOOTHING = 0.1
TEMP_INIT = 0.07
TEMP_RANGE = (0.001, 0.5)
MAX_TEXT_TOKENS = 30  # BLIP pretraining's max_length
NEGATIVE_SMOOTHING = 1e-4  # BLIP adds it to the hard-negative sampling weights


# ---------------------------------------------------------------------------------------------
# Weighted losses (pure torch; shared with the LAVIS model)
# ---------------------------------------------------------------------------------------------


def weighted_mean(per_sample: torch.Tensor, weights: torch.Tensor) -> torch.Tensor | None:
    """``sum w_i l_i / sum w_i``; None when every weight is 0. Uniform weights give the mean."""
    total = weights.sum()
    if not total > 0:
        return None
    return (weights.to(per_sample.dtype) * per_sample).sum() / total


def itc_loss(
    image_feat: torch.Tensor, text_feat: torch.Tensor, temp: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """BLIP's in-batch ITC (mean of the image-to-text and text-to-image cross-entropies of
    ``feat @ feat.T / temp``), weighted as FLYT's CLIP loss: uniform weights give it exactly, a
    zero weight removes the sample from the batch."""
    from curate.training.losses import weighted_clip_loss

    return weighted_clip_loss(image_feat, text_feat, torch.log(1.0 / temp), weights / weights.sum())


@torch.no_grad()
def hard_negatives(sim_i2t: torch.Tensor, weights: torch.Tensor, generator: torch.Generator | None = None):
    """BLIP's hard negatives: for each text an image drawn from ``softmax(sim_t2i) + 1e-4`` and
    for each image a text drawn from ``softmax(sim_i2t) + 1e-4``, the sample itself and every
    zero-weight sample excluded. Returns ``(negative image of each text, negative text of each
    image)``, each [N] long; -1 where no other sample has weight (no negative)."""
    keep = weights > 0

    def draw(sim):
        p = torch.softmax(sim.float(), dim=1) + NEGATIVE_SMOOTHING
        p.fill_diagonal_(0)
        p[:, ~keep] = 0
        out = torch.full((sim.shape[0],), -1, dtype=torch.long)
        rows = (p.sum(1) > 0).nonzero().flatten()
        if len(rows):
            out[rows] = torch.multinomial(p[rows].cpu(), 1, generator=generator).flatten()
        return out.to(sim.device)

    return draw(sim_i2t.T), draw(sim_i2t)


def itm_loss(
    logits_pos: torch.Tensor,
    logits_neg_image: torch.Tensor,
    logits_neg_text: torch.Tensor,
    weights: torch.Tensor,
    has_negative: torch.Tensor | None = None,
) -> torch.Tensor | None:
    """BLIP's ITM cross-entropy over positives (label 1) and the two kinds of negative pairs
    (label 0), each pair weighted by its sample's weight (``has_negative`` [N] masks samples
    without a negative pair); uniform weights give the plain mean over the 3N pairs."""
    n = logits_pos.shape[0]
    logits = torch.cat([logits_pos, logits_neg_image, logits_neg_text]).float()
    labels = torch.cat([torch.ones(n, dtype=torch.long), torch.zeros(2 * n, dtype=torch.long)]).to(logits.device)
    ce = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    neg = weights if has_negative is None else weights * has_negative.to(weights.dtype)
    return weighted_mean(ce, torch.cat([weights, neg, neg]).float())


def lm_loss(
    logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor, label_smoothing: float = LABEL_SMOOTHING
) -> torch.Tensor | None:
    """BLIP's decoder loss: next-token cross-entropy (label smoothing 0.1) averaged over the
    batch's labelled tokens, each token weighted by its sample's weight."""
    shift_logits, shift_labels = logits[:, :-1].float(), labels[:, 1:]
    ce = torch.nn.functional.cross_entropy(
        shift_logits.reshape(-1, shift_logits.shape[-1]),
        shift_labels.reshape(-1),
        ignore_index=-100,
        reduction="none",
        label_smoothing=label_smoothing,
    ).view(shift_labels.shape)
    token_weights = (shift_labels != -100).float() * weights.float()[:, None]
    total = token_weights.sum()
    if not total > 0:
        return None
    return (ce * token_weights).sum() / total


# ---------------------------------------------------------------------------------------------
# The tiny model
# ---------------------------------------------------------------------------------------------


class TinyBlip(torch.nn.Module):
    """BLIP's parts: a retrieval model (ITC + ITM) and a captioner sharing its vision encoder."""

    def __init__(self, retrieval, captioner, temp: float = TEMP_INIT):
        super().__init__()
        self.retrieval = retrieval
        self.captioner = captioner
        self.captioner.vision_model = retrieval.vision_model
        self.temp = torch.nn.Parameter(torch.tensor(float(temp)))

    @property
    def text_config(self):
        return self.retrieval.config.text_config

    def image_embeds(self, pixel_values):
        return self.retrieval.vision_model(pixel_values=pixel_values).last_hidden_state

    def image_features(self, image_embeds):
        return torch.nn.functional.normalize(self.retrieval.vision_proj(image_embeds[:, 0]), dim=-1)

    def text_features(self, input_ids, attention_mask):
        out = self.retrieval.text_encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if self.text_pooling == "mean":
            mask = attention_mask[..., None].to(out.dtype)
            pooled = (out * mask).sum(1) / mask.sum(1).clamp(min=1)
        else:
            pooled = out[:, 0]
        return torch.nn.functional.normalize(self.retrieval.text_proj(pooled), dim=-1)

    def itm_logits(self, input_ids, attention_mask, image_embeds):
        ids = input_ids.clone()
        ids[:, 0] = self.enc_token_id
        atts = torch.ones(image_embeds.shape[:-1], dtype=torch.long, device=image_embeds.device)
        out = self.retrieval.text_encoder(
            input_ids=ids,
            attention_mask=attention_mask,
            encoder_hidden_states=image_embeds,
            encoder_attention_mask=atts,
        )
        return self.retrieval.itm_head(out.last_hidden_state[:, 0])

    def decoder_logits(self, input_ids, attention_mask, image_embeds):
        ids = input_ids.clone()
        ids[:, 0] = self.text_config.bos_token_id
        atts = torch.ones(image_embeds.shape[:-1], dtype=torch.long, device=image_embeds.device)
        out = self.captioner.text_decoder(
            input_ids=ids,
            attention_mask=attention_mask,
            encoder_hidden_states=image_embeds,
            encoder_attention_mask=atts,
        )
        return out.logits, ids.masked_fill(attention_mask == 0, -100)

    enc_token_id: int = 6
    #: the ITC text feature: BLIP's [CLS] ("cls"), or the mean over the text's tokens ("mean"),
    #: which the tiny model uses (see `build_tiny_blip`)
    text_pooling: str = "cls"


def build_tiny_blip(
    tokenizer_texts,
    seed: int,
    hidden: int = 64,
    layers: int = 2,
    image_size: int = 64,
    patch_size: int = 16,
    vocab_size: int = 400,
    text_pooling: str = "mean",
):
    """``(TinyBlip, BlipProcessor)``: a WordPiece tokenizer fitted to `tokenizer_texts`, tiny BLIP
    configs (`curate.scoring.captioning.tiny_blip_config`), seeded initialisation."""
    from transformers import BlipForConditionalGeneration, BlipForImageTextRetrieval, BlipProcessor

    from curate.scoring.captioning import clip_style_image_processor, tiny_blip_config, train_wordpiece_tokenizer

    tokenizer = train_wordpiece_tokenizer([str(t) for t in tokenizer_texts], vocab_size=vocab_size)
    config = tiny_blip_config(tokenizer, image_size=image_size, patch_size=patch_size, hidden=hidden, layers=layers)
    config.image_text_hidden_size = hidden
    # transformers' BLIP initialises the ViT's class and position embeddings at std 1e-10 (it
    # expects pretrained weights): every image's [CLS] feature is then the same and ITC/ITM
    # cannot start. A from-scratch ViT's scale instead (open_clip's: width ** -0.5)
    config.vision_config.initializer_range = hidden**-0.5
    config.text_config.label_smoothing = LABEL_SMOOTHING
    processor = BlipProcessor(image_processor=clip_style_image_processor(image_size), tokenizer=tokenizer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = TinyBlip(BlipForImageTextRetrieval(config), BlipForConditionalGeneration(config))
    model.enc_token_id = tokenizer.convert_tokens_to_ids("[ENC]")
    # BLIP's text encoder starts from pretrained BERT, whose [CLS] already carries the sentence;
    # a from-scratch two-layer one's [CLS] barely depends on the words, so in-batch ITC collapses
    # every feature to one point (measured: the loss stays at ln(batch)). The tiny model's ITC
    # text feature is the mean over its tokens instead; ITM and LM are BLIP's.
    model.text_pooling = text_pooling
    return model, processor


def save_blip(model: TinyBlip, processor, out_dir) -> Path:
    out_dir = Path(out_dir)
    model.retrieval.save_pretrained(out_dir / "retrieval")
    model.captioner.save_pretrained(out_dir / "captioner")
    processor.save_pretrained(out_dir)
    (out_dir / "itc.json").write_text(
        json.dumps(
            {
                "temp": float(model.temp.detach()),
                "enc_token_id": int(model.enc_token_id),
                "text_pooling": model.text_pooling,
            }
        )
        + "\n"
    )
    return out_dir


def load_blip(model_dir):
    """``(TinyBlip.eval(), BlipProcessor)`` from a folder written by `save_blip`."""
    from transformers import BlipForConditionalGeneration, BlipForImageTextRetrieval, BlipProcessor

    model_dir = Path(model_dir)
    if not (model_dir / "retrieval" / "config.json").is_file():
        raise FileNotFoundError(
            f"{model_dir} is not a transformers BLIP folder (retrieval/, captioner/, itc.json): a LAVIS "
            "checkpoint (a library: lavis recipe's run) is read through its conversion, rule convert_blip_lavis "
            "(curate.training.lavis_convert)"
        )
    itc = json.loads((model_dir / "itc.json").read_text())
    model = TinyBlip(
        BlipForImageTextRetrieval.from_pretrained(model_dir / "retrieval"),
        BlipForConditionalGeneration.from_pretrained(model_dir / "captioner"),
        temp=itc["temp"],
    )
    model.enc_token_id = int(itc["enc_token_id"])
    model.text_pooling = itc["text_pooling"]
    return model.eval(), BlipProcessor.from_pretrained(model_dir)


# ---------------------------------------------------------------------------------------------
# Pretraining
# ---------------------------------------------------------------------------------------------


def tokenize(processor, texts, max_length: int = MAX_TEXT_TOKENS):
    enc = processor.tokenizer(
        list(texts), padding="longest", truncation=True, max_length=max_length, return_tensors="pt"
    )
    return enc["input_ids"], enc["attention_mask"]


def blip_losses(
    model: TinyBlip, pixel_values, input_ids, attention_mask, weights, generator: torch.Generator | None = None
) -> dict | None:
    """The three weighted losses of one batch (``itc``, ``itm``, ``lm``, ``loss`` their sum);
    None when every weight is 0."""
    if not weights.sum() > 0:
        return None
    image_embeds = model.image_embeds(pixel_values)
    image_feat = model.image_features(image_embeds)
    text_feat = model.text_features(input_ids, attention_mask)
    temp = model.temp
    loss_itc = itc_loss(image_feat, text_feat, temp, weights)
    neg_image, neg_text = hard_negatives(image_feat @ text_feat.T / temp, weights, generator)
    has_negative = (neg_image >= 0) & (neg_text >= 0)
    safe_image, safe_text = neg_image.clamp(min=0), neg_text.clamp(min=0)
    logits_pos = model.itm_logits(input_ids, attention_mask, image_embeds)
    logits_neg_image = model.itm_logits(input_ids, attention_mask, image_embeds[safe_image])
    logits_neg_text = model.itm_logits(input_ids[safe_text], attention_mask[safe_text], image_embeds)
    loss_itm = itm_loss(logits_pos, logits_neg_image, logits_neg_text, weights, has_negative)
    logits, labels = model.decoder_logits(input_ids, attention_mask, image_embeds)
    loss_lm = lm_loss(logits, labels, weights)
    total = loss_itc + loss_itm + loss_lm
    return {"itc": loss_itc, "itm": loss_itm, "lm": loss_lm, "loss": total}


def step_lr(step: int, epoch: int, recipe: dict) -> float:
    """LAVIS's ``linear_warmup_step_lr``: ``max(min_lr, lr * lr_decay_rate ** epoch)``, with a
    linear warm-up from ``warmup_lr`` to ``lr`` over the first ``warmup`` steps of epoch 0."""
    lr = float(recipe["lr"])
    warmup = int(recipe["warmup"])
    if epoch == 0 and step < warmup:
        warmup_lr = float(recipe["warmup_lr"])
        return warmup_lr + (lr - warmup_lr) * step / max(1, warmup)
    return max(float(recipe["min_lr"]), lr * float(recipe["lr_decay_rate"]) ** epoch)


def _param_groups(model, wd: float) -> list[dict]:
    seen, decay, no_decay = set(), [], []
    for name, p in model.named_parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        (no_decay if p.ndim < 2 or "bias" in name or "norm" in name.lower() or name == "temp" else decay).append(p)
    return [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]


def train_blip(recipe: dict, shard_dir, out_dir, seed: int, tokenizer_texts, threads: int = 1) -> dict:
    """Pretrain a tiny BLIP from scratch on the reshard in `shard_dir` with the sample weights of
    its samples; saved to `out_dir` (`save_blip`). Returns a summary."""
    from curate.data.reshard import reshard_contents
    from curate.training.loop import decode_rgb, read_samples

    recipe = complete_recipe(recipe)
    shards, meta = reshard_contents(shard_dir)
    n_samples, batch_size = int(meta["written"]), int(recipe["batch_size"])
    steps_per_epoch = n_samples // batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"{n_samples} samples do not fill one batch of {batch_size}")
    torch.set_num_threads(int(threads))
    torch.manual_seed(int(seed))
    model, processor = build_tiny_blip(
        tokenizer_texts, seed=seed, vocab_size=recipe["tokenizer"]["vocab_size"], **recipe["arch"]
    )
    model.train()
    opt = torch.optim.AdamW(_param_groups(model, float(recipe["wd"])), lr=float(recipe["lr"]), betas=(0.9, 0.999))
    generator = torch.Generator().manual_seed(int(seed))
    step, skipped, history = 0, 0, []

    def run(batch, epoch, epoch_step):
        nonlocal step, skipped
        for group in opt.param_groups:
            group["lr"] = step_lr(epoch_step, epoch, recipe)
        step += 1
        pix = processor.image_processor(images=[image for image, _, _ in batch], return_tensors="pt")["pixel_values"]
        ids, attn = tokenize(processor, [t for _, t, _ in batch])
        weights = torch.tensor([w for _, _, w in batch], dtype=torch.float32)
        losses = blip_losses(model, pix, ids, attn, weights, generator)
        if losses is None:
            skipped += 1
            return
        opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        opt.step()
        with torch.no_grad():
            model.temp.clamp_(*TEMP_RANGE)
        history.append({k: float(v.detach()) for k, v in losses.items()})
        if step % 20 == 0:
            log.info(
                "epoch %d step %d loss %.4f (itc %.3f itm %.3f lm %.3f) lr %.2e",
                epoch,
                step,
                *(history[-1][k] for k in ("loss", "itc", "itm", "lm")),
                opt.param_groups[0]["lr"],
            )

    for epoch in range(int(recipe["epochs"])):
        batch, epoch_step = [], 0
        for data, text, weight in read_samples(
            shards, order_seed=seed * 100_003 + epoch, shuffle_buffer=int(recipe["shuffle_buffer"])
        ):
            image = decode_rgb(data)
            if image is None:  # an image that does not decode is skipped, as open_clip's loader does
                continue
            batch.append((image, text, weight))
            if len(batch) == batch_size:
                run(batch, epoch, epoch_step)
                batch, epoch_step = [], epoch_step + 1
    model.eval()
    save_blip(model, processor, out_dir)
    summary = {
        "samples": n_samples,
        "steps": step,
        "skipped_steps": skipped,
        "first": history[0] if history else None,
        "final": history[-1] if history else None,
    }
    (Path(out_dir) / "train_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


# ---------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------
