"""BLIP's fine-tuned task evaluations (MoS Table 3's VQA, NLVR and RefCOCO+; docs/algorithms.md §5.1).

Each task type fine-tunes a copy of the pretrained model's parts with a task head on the task
folder's ``train/`` split, then scores its ``test/`` split (`curate.data.evalsets` gives the
layouts); the pretrained model itself is left as it was, so the suite's other tasks see it.

- **VQA** (`BlipVqa`, BLIP's ``BLIP_VQA``): the text encoder encodes the question (``[ENC]``
  first) cross-attending to the image; the text decoder generates the answer (``[DEC]`` first)
  cross-attending to the question's states. Trained on each question's distinct answers, each
  weighted by its share of the ten (BLIP's VQA dataset), with BLIP's label-smoothed (0.1)
  decoder loss summed over the answer's tokens. Scored by BLIP's ``rank`` inference: the
  decoder's first-token probabilities pick the ``k_test`` most likely candidates, which are
  re-scored in full; VQA v2 accuracy of the best over the ten answers.
- **NLVR2** (`BlipNlvr`, BLIP's ``BLIP_NLVR``): the text encoder reads the sentence (``[ENC]``
  first) with two cross-attentions in each layer, one per image, both started from the pretrained
  cross-attention; their outputs are averaged in the first half of the layers and merged by a
  new linear layer over their concatenation in the second half; an MLP on ``[ENC]``'s output
  says true or false. Trained with cross-entropy, swapping the two images (and the words "left"
  and "right") half the time, as BLIP's NLVR dataset does. Accuracy.
- **RefCOCO+** (`ItmGrounder`): each candidate box's crop is scored by the ITM head against the
  expression, and the best is the prediction. Fine-tuned as BLIP's ITM: the target's crop is a
  matching pair, another candidate's crop a non-matching one. Accuracy = the target chosen.

Fine-tuning, all three (`finetune`): AdamW with weight decay on every parameter, the learning
rate cosine-decayed once per epoch (BLIP's ``cosine_lr_schedule``), full batches only, the train
split read in a seeded shuffled order (`curate.data.evalsets.iter_task_samples`); ``epochs``,
``max_steps``, ``batch_size``, ``lr``, ``min_lr``, ``weight_decay`` and ``seed`` come from the
suite's task entry (`curate.evaluation.task_types`).
"""

from __future__ import annotations

import copy
import logging
import math
import re
from collections import Counter

import numpy as np
import torch

from curate.data.evalsets import iter_task_samples, nlvr_example, refcoco_example, vqa_example
from curate.training.blip import TinyBlip, tokenize

log = logging.getLogger(__name__)

#: BLIP's decoder loss smooths its labels by 0.1 always (models/med.py), in training and when
#: ranking VQA answers by it **(quirk)**: the rank score is minus the smoothed loss
LABEL_SMOOTHING = 0.1
#: BLIP's text lengths: questions cut to 35 tokens, NLVR sentences to 40 words
MAX_QUESTION_TOKENS = 35
MAX_SENTENCE_WORDS = 40
MAX_EXPRESSION_TOKENS = 30
#: sequences scored at once when ranking answers (questions x k_test)
RANK_CHUNK = 4096


# ---------------------------------------------------------------------------------------------
# Text as BLIP prepares it


def pre_question(question: str, max_words: int = 50) -> str:
    """BLIP's question text: lower case, ``.!"()*#:;~`` removed, trailing spaces cut, at most
    `max_words` words."""
    text = re.sub(r"[.!\"()*#:;~]", "", str(question).lower()).rstrip(" ")
    return " ".join(text.split(" ")[:max_words])


def pre_caption(caption: str, max_words: int = 50) -> str:
    """BLIP's sentence text: lower case, ``.!"()*#:;~`` to spaces, runs of spaces collapsed,
    stripped, at most `max_words` words."""
    text = re.sub(r"[.!\"()*#:;~]", " ", str(caption).lower())
    text = re.sub(r"\s{2,}", " ", text).rstrip("\n").strip(" ")
    return " ".join(text.split(" ")[:max_words])


# ---------------------------------------------------------------------------------------------
# VQA v2's accuracy

_NUMBER_WORDS = {w: str(i) for i, w in enumerate("zero one two three four five six seven eight nine ten".split())}
_ARTICLES = {"a", "an", "the"}
_PUNCTUATION = re.compile(r"[;/\[\]\"{}()=+\\_\-><@`,?!*#%^&$~']")


def normalise_vqa_answer(answer: str) -> str:
    """An answer as VQA v2's evaluation compares it: lower case, punctuation dropped (a period
    only where it is not a decimal point), number words as digits, articles dropped. (The
    official script also expands a list of contractions, which is not reproduced.)"""
    text = str(answer).replace("\n", " ").replace("\t", " ").strip().lower()
    text = _PUNCTUATION.sub("", text)
    text = re.sub(r"(?<!\d)\.(?!\d)", "", text)
    words = [_NUMBER_WORDS.get(w, w) for w in text.split()]
    return " ".join(w for w in words if w not in _ARTICLES)


def vqa_accuracy(prediction: str, answers: list[str]) -> float:
    """VQA v2's accuracy of one prediction against the ten human answers: the mean, over each
    answer left out in turn, of ``min(1, matches among the other nine / 3)``; so 3 or more
    matching humans give 1, 2 give 0.6, 1 gives 0.3 (with 10 answers)."""
    if not answers:
        raise ValueError("vqa_accuracy needs the human answers")
    pred = normalise_vqa_answer(prediction)
    hits = [normalise_vqa_answer(a) == pred for a in answers]
    total = sum(hits)
    return float(sum(min(1.0, (total - hit) / 3.0) for hit in hits) / len(hits))


# ---------------------------------------------------------------------------------------------
# Shared parts


def _device(module: torch.nn.Module) -> torch.device:
    return next(module.parameters()).device


def pixels(processor, images, device) -> torch.Tensor:
    return processor.image_processor(images=list(images), return_tensors="pt")["pixel_values"].to(device)


def _text(processor, texts, device, max_length: int, first_token: int | None = None):
    ids, attn = tokenize(processor, texts, max_length=max_length)
    if first_token is not None:
        ids[:, 0] = first_token
    return ids.to(device), attn.to(device)


def sequence_losses(logits: torch.Tensor, ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """BLIP's decoder loss per sequence: next-token cross-entropy with label smoothing 0.1,
    summed over each sequence's tokens (padding ignored) [N]."""
    labels = ids.masked_fill(attention_mask == 0, -100)[:, 1:]
    ce = torch.nn.functional.cross_entropy(
        logits[:, :-1].float().reshape(-1, logits.shape[-1]),
        labels.reshape(-1),
        ignore_index=-100,
        reduction="none",
        label_smoothing=LABEL_SMOOTHING,
    )
    return ce.view(labels.shape).sum(1)


def cosine_epoch_lr(epoch: int, epochs: int, lr: float, min_lr: float) -> float:
    """BLIP's ``cosine_lr_schedule``: set at the start of each epoch."""
    return (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs)) + min_lr


def finetune(module: torch.nn.Module, task: dict, batches, name: str) -> dict:
    """Fine-tune `module` by `task`'s parameters: ``batches(epoch)`` yields one epoch's training
    examples, grouped here into full batches of ``batch_size`` whose loss is ``module.loss(batch)``.
    Returns ``{"steps", "loss_first", "loss_last"}`` (mean losses of the first and last 5 steps)."""
    epochs, max_steps, batch_size = int(task["epochs"]), task["max_steps"], int(task["batch_size"])
    params = [p for p in module.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=float(task["lr"]), weight_decay=float(task["weight_decay"]))
    module.train()
    losses: list[float] = []
    for epoch in range(epochs):
        for group in opt.param_groups:
            group["lr"] = cosine_epoch_lr(epoch, epochs, float(task["lr"]), float(task["min_lr"]))
        batch: list = []
        for example in batches(epoch):
            batch.append(example)
            if len(batch) < batch_size:
                continue
            loss = module.loss(batch)
            batch = []
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            if len(losses) % 20 == 0:
                log.info("%s fine-tuning: epoch %d step %d loss %.4f", name, epoch, len(losses), losses[-1])
            if max_steps is not None and len(losses) >= int(max_steps):
                break
        if max_steps is not None and len(losses) >= int(max_steps):
            break
    module.eval()
    if not losses:
        raise ValueError(f"{name}: the train split holds fewer samples than one batch of {batch_size}")
    summary = {"steps": len(losses), "loss_first": float(np.mean(losses[:5])), "loss_last": float(np.mean(losses[-5:]))}
    log.info("%s fine-tuned: %s", name, summary)
    return summary


def _train_stream(task_dir, task: dict, read):
    """``batches(epoch)``: the train split's examples (decoded by `read`) in epoch-seeded order."""

    def batches(epoch: int):
        for parts in iter_task_samples(task_dir, "train", shuffle_seed=int(task["seed"]) * 1_000_003 + epoch):
            yield read(parts)

    return batches


def _test_batches(task_dir, read, batch_size: int):
    batch = []
    for parts in iter_task_samples(task_dir, "test"):
        batch.append(read(parts))
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def _finetuned(model: TinyBlip, build, task: dict, task_dir, read, name: str):
    """A task module built from `model` by `build` and fine-tuned; the seed fixes its new
    parameters' initialisation and everything random in training, without touching torch's
    global generator."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(task["seed"]))
        module = build(model)
        summary = finetune(module, task, _train_stream(task_dir, task, read), name)
    return module, summary


def _finetune_metrics(summary: dict) -> dict:
    return {f"finetune_{k}": v for k, v in summary.items()}


# ---------------------------------------------------------------------------------------------
# VQA


class BlipVqa(torch.nn.Module):
    """BLIP's VQA model from a pretrained BLIP's parts (copies): its vision encoder, its text
    encoder (ITM's, with cross-attention) as question encoder, its text decoder as answer decoder."""

    def __init__(self, model: TinyBlip, processor):
        super().__init__()
        self.vision = copy.deepcopy(model.retrieval.vision_model)
        self.text_encoder = copy.deepcopy(model.retrieval.text_encoder)
        self.text_decoder = copy.deepcopy(model.captioner.text_decoder)
        self.processor = processor
        self.enc_token_id = int(model.enc_token_id)
        self.bos_token_id = int(model.text_config.bos_token_id)

    def question_states(self, images, questions):
        """(question states [B, T, H], question mask [B, T])."""
        device = _device(self)
        image_embeds = self.vision(pixel_values=pixels(self.processor, images, device)).last_hidden_state
        ids, attn = _text(
            self.processor, [pre_question(q) for q in questions], device, MAX_QUESTION_TOKENS, self.enc_token_id
        )
        states = self.text_encoder(
            input_ids=ids,
            attention_mask=attn,
            encoder_hidden_states=image_embeds,
            encoder_attention_mask=torch.ones(image_embeds.shape[:-1], dtype=torch.long, device=device),
        ).last_hidden_state
        return states, attn

    def answer_logits(self, ids, attn, states, states_mask):
        return self.text_decoder(
            input_ids=ids, attention_mask=attn, encoder_hidden_states=states, encoder_attention_mask=states_mask
        ).logits

    def loss(self, batch: list[dict]) -> torch.Tensor:
        """BLIP's VQA loss: ``sum over answers of weight * answer loss``, over the batch size."""
        states, states_mask = self.question_states([e["image"] for e in batch], [e["question"] for e in batch])
        answers, weights, repeats = [], [], []
        for e in batch:
            counts = Counter(e["answers"])
            answers += list(counts)
            weights += [c / len(e["answers"]) for c in counts.values()]
            repeats.append(len(counts))
        device = states.device
        ids, attn = _text(self.processor, answers, device, MAX_QUESTION_TOKENS, self.bos_token_id)
        index = torch.repeat_interleave(torch.arange(len(batch), device=device), torch.tensor(repeats, device=device))
        logits = self.answer_logits(ids, attn, states[index], states_mask[index])
        per_answer = sequence_losses(logits, ids, attn)
        return (torch.tensor(weights, device=device) * per_answer).sum() / len(batch)

    @torch.no_grad()
    def rank(self, states, states_mask, candidate_ids, candidate_attn, k: int) -> torch.Tensor:
        """BLIP's ``rank_answer``: the index of each question's best candidate [B]. The first-token
        probabilities (the decoder at ``[DEC]``) keep the top `k` candidates; each is scored by
        minus its label-smoothed loss (BLIP's score) and the best kept one wins."""
        n, k = states.shape[0], min(int(k), candidate_ids.shape[0])
        start = candidate_ids[:1, :1].expand(n, 1)
        first = self.answer_logits(start, torch.ones_like(start), states, states_mask)[:, 0].float()
        top = torch.softmax(first, dim=-1).index_select(1, candidate_ids[:, 1]).topk(k, dim=1).indices  # [B, k]
        best = []
        per_chunk = max(1, RANK_CHUNK // k)
        for s in range(0, n, per_chunk):
            rows = top[s : s + per_chunk]
            flat = rows.reshape(-1)
            ids, attn = candidate_ids[flat], candidate_attn[flat]
            width = int(attn.sum(1).max())
            ids, attn = ids[:, :width], attn[:, :width]
            q = torch.arange(s, s + rows.shape[0], device=states.device).repeat_interleave(k)
            scores = -sequence_losses(self.answer_logits(ids, attn, states[q], states_mask[q]), ids, attn)
            best.append(rows.gather(1, scores.view(-1, k).argmax(1, keepdim=True))[:, 0])
        return torch.cat(best)


def vqa_task(model, processor, task_dir, batch_size, task):
    """VQA v2 accuracy after fine-tuning BLIP's VQA model on the train split (overall and per
    answer type)."""
    vqa, summary = _finetuned(model, lambda m: BlipVqa(m, processor), task, task_dir, vqa_example, "vqa")
    device = _device(vqa)
    encoded: dict[tuple, tuple] = {}
    scores, by_type = [], {}
    with torch.no_grad():
        for batch in _test_batches(task_dir, vqa_example, batch_size):
            states, states_mask = vqa.question_states([e["image"] for e in batch], [e["question"] for e in batch])
            # questions sharing a candidate list are ranked together (VQA v2: one list for all)
            groups: dict[tuple, list[int]] = {}
            for i, e in enumerate(batch):
                groups.setdefault(tuple(e["candidates"]), []).append(i)
            for candidates, rows in groups.items():
                if candidates not in encoded:
                    encoded[candidates] = _text(
                        processor, list(candidates), device, MAX_QUESTION_TOKENS, vqa.bos_token_id
                    )
                picked = vqa.rank(states[rows], states_mask[rows], *encoded[candidates], k=int(task["k_test"]))
                for i, c in zip(rows, picked.tolist()):
                    acc = vqa_accuracy(candidates[c], batch[i]["answers"])
                    scores.append(acc)
                    kind = re.sub(r"\W+", "_", str(batch[i]["answer_type"] or "unknown"))
                    by_type.setdefault(kind, []).append(acc)
    metrics = {"vqa_accuracy": float(np.mean(scores)), "n_questions": len(scores)}
    metrics |= {f"vqa_accuracy_{kind}": float(np.mean(v)) for kind, v in sorted(by_type.items())}
    return metrics | _finetune_metrics(summary)


# ---------------------------------------------------------------------------------------------
# NLVR2


class BlipNlvr(torch.nn.Module):
    """BLIP's NLVR model from a pretrained BLIP's parts (copies): the vision encoder; the text
    encoder with a second cross-attention per layer (a copy of the pretrained one: its query,
    key and value and its output projection), both images' outputs averaged in the first half
    of the layers and merged by a new ``Linear(2H, H)`` in the second; a new MLP classifier."""

    def __init__(self, model: TinyBlip, processor):
        super().__init__()
        self.vision = copy.deepcopy(model.retrieval.vision_model)
        self.text = copy.deepcopy(model.retrieval.text_encoder)
        self.processor = processor
        self.enc_token_id = int(model.enc_token_id)
        config = self.text.config
        layers = self.text.encoder.layer
        hidden = config.hidden_size
        self.cross1 = torch.nn.ModuleList(copy.deepcopy(layer.crossattention.self) for layer in layers)
        self.dense1 = torch.nn.ModuleList(copy.deepcopy(layer.crossattention.output.dense) for layer in layers)
        self.merge_from = len(layers) // 2  # BLIP: layers 6-11 of 12 merge, 0-5 average
        self.merge = torch.nn.ModuleList(torch.nn.Linear(2 * hidden, hidden) for _ in layers[self.merge_from :])
        for linear in self.merge:  # as BERT initialises a new linear layer
            torch.nn.init.normal_(linear.weight, std=config.initializer_range)
            torch.nn.init.zeros_(linear.bias)
        self.cls_head = torch.nn.Sequential(
            torch.nn.Linear(hidden, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 2)
        )

    def encode(self, ids, attn, image0, image1) -> torch.Tensor:
        """The text encoder's last states with one cross-attention per image [B, T, H]."""
        h = self.text.embeddings(input_ids=ids)
        mask = (1.0 - attn[:, None, None, :].to(h.dtype)) * torch.finfo(h.dtype).min
        for i, layer in enumerate(self.text.encoder.layer):
            a, _ = layer.attention(h, attention_mask=mask)
            cross = layer.crossattention
            c0, _ = cross.self(a, encoder_hidden_states=image0)
            c1, _ = self.cross1[i](a, encoder_hidden_states=image1)
            d0, d1 = cross.output.dense(c0), self.dense1[i](c1)
            merged = (d0 + d1) / 2 if i < self.merge_from else self.merge[i - self.merge_from](torch.cat([d0, d1], -1))
            a = cross.output.LayerNorm(cross.output.dropout(merged) + a)
            h = layer.feed_forward_chunk(a)
        return h

    def logits(self, left, right, sentences) -> torch.Tensor:
        device = _device(self)
        embeds = self.vision(pixel_values=pixels(self.processor, [*left, *right], device)).last_hidden_state
        image0, image1 = embeds.split(len(left))
        texts = [pre_caption(s, MAX_SENTENCE_WORDS) for s in sentences]  # BLIP cuts words, not tokens
        ids, attn = _text(self.processor, texts, device, self.text.config.max_position_embeddings, self.enc_token_id)
        return self.cls_head(self.encode(ids, attn, image0, image1)[:, 0])

    def loss(self, batch: list[dict]) -> torch.Tensor:
        logits = self.logits([e["left"] for e in batch], [e["right"] for e in batch], [e["sentence"] for e in batch])
        labels = torch.tensor([int(e["label"]) for e in batch], device=logits.device)
        return torch.nn.functional.cross_entropy(logits, labels)


def swap_left_right(example: dict) -> dict:
    """BLIP's NLVR augmentation: the two images swapped, and with them the words "left" and "right"."""
    words = pre_caption(example["sentence"], MAX_SENTENCE_WORDS).split(" ")
    sentence = " ".join({"left": "right", "right": "left"}.get(w, w) for w in words)
    return example | {"left": example["right"], "right": example["left"], "sentence": sentence}


def nlvr_task(model, processor, task_dir, batch_size, task):
    """NLVR2 accuracy after fine-tuning BLIP's NLVR model on the train split."""
    rng = np.random.default_rng([int(task["seed"]), 2])

    def read(parts):
        example = nlvr_example(parts)
        return swap_left_right(example) if rng.random() < 0.5 else example

    nlvr, summary = _finetuned(model, lambda m: BlipNlvr(m, processor), task, task_dir, read, "nlvr")
    correct = []
    with torch.no_grad():
        for batch in _test_batches(task_dir, nlvr_example, batch_size):
            logits = nlvr.logits(
                [e["left"] for e in batch], [e["right"] for e in batch], [e["sentence"] for e in batch]
            )
            correct += [int(p) == int(e["label"]) for p, e in zip(logits.argmax(1).tolist(), batch)]
    return {"accuracy": float(np.mean(correct)), "n_pairs": len(correct)} | _finetune_metrics(summary)


# ---------------------------------------------------------------------------------------------
# RefCOCO+


def crop_box(image, box):
    """The box's pixels (``[x0, y0, x1, y1]``, rounded outwards, clipped to the image; at least 1 px)."""
    w, h = image.size
    x0, y0 = max(0, min(w - 1, math.floor(box[0]))), max(0, min(h - 1, math.floor(box[1])))
    x1, y1 = max(x0 + 1, min(w, math.ceil(box[2]))), max(y0 + 1, min(h, math.ceil(box[3])))
    return image.crop((x0, y0, x1, y1))


class ItmGrounder(torch.nn.Module):
    """A pretrained BLIP's ITM parts (copies: vision encoder, text encoder, ITM head), scoring a
    region's crop against an expression."""

    def __init__(self, model: TinyBlip, processor, seed: int = 0):
        super().__init__()
        self.retrieval = copy.deepcopy(model.retrieval)
        for unused in ("vision_proj", "text_proj"):  # ITC's projections: not part of ITM
            getattr(self.retrieval, unused).requires_grad_(False)
        self.processor = processor
        self.enc_token_id = int(model.enc_token_id)
        self.rng = np.random.default_rng([int(seed), 3])

    def match_logits(self, crops, expressions) -> torch.Tensor:
        """ITM logits [N, 2] of each crop with its expression (class 1: match)."""
        device = _device(self)
        embeds = self.retrieval.vision_model(pixel_values=pixels(self.processor, crops, device)).last_hidden_state
        ids, attn = _text(
            self.processor, [pre_caption(t) for t in expressions], device, MAX_EXPRESSION_TOKENS, self.enc_token_id
        )
        out = self.retrieval.text_encoder(
            input_ids=ids,
            attention_mask=attn,
            encoder_hidden_states=embeds,
            encoder_attention_mask=torch.ones(embeds.shape[:-1], dtype=torch.long, device=device),
        ).last_hidden_state
        return self.retrieval.itm_head(out[:, 0])

    def loss(self, batch: list[dict]) -> torch.Tensor:
        """ITM cross-entropy: the target's crop matches its expression, another candidate's does not."""
        crops, texts, labels = [], [], []
        for e in batch:
            crops.append(crop_box(e["image"], e["boxes"][e["target"]]))
            texts.append(e["expression"])
            labels.append(1)
            others = [i for i in range(len(e["boxes"])) if i != e["target"]]
            if others:
                crops.append(crop_box(e["image"], e["boxes"][others[int(self.rng.integers(len(others)))]]))
                texts.append(e["expression"])
                labels.append(0)
        logits = self.match_logits(crops, texts)
        return torch.nn.functional.cross_entropy(logits, torch.tensor(labels, device=logits.device))


def refcoco_task(model, processor, task_dir, batch_size, task):
    """RefCOCO+ accuracy (the target box chosen) after fine-tuning the ITM head on the train split."""
    grounder, summary = _finetuned(
        model, lambda m: ItmGrounder(m, processor, int(task["seed"])), task, task_dir, refcoco_example, "refcoco"
    )
    correct = []
    with torch.no_grad():
        for batch in _test_batches(task_dir, refcoco_example, max(1, batch_size // 4)):
            crops = [crop_box(e["image"], box) for e in batch for box in e["boxes"]]
            texts = [e["expression"] for e in batch for _ in e["boxes"]]
            match = torch.softmax(grounder.match_logits(crops, texts).float(), dim=-1)[:, 1].tolist()
            start = 0
            for e in batch:
                scores = match[start : start + len(e["boxes"])]
                start += len(e["boxes"])
                correct.append(int(np.argmax(scores)) == e["target"])
    return {"accuracy": float(np.mean(correct)), "n_expressions": len(correct)} | _finetune_metrics(summary)
