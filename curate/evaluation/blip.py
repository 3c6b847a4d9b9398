"""Evaluating a BLIP (MoS Table 3): zero-shot retrieval and classification by its ITC features,
CIDEr of its captions, and the synthetic VQA (answers ranked by the decoder's likelihood); VQA v2,
NLVR2 and RefCOCO+ after BLIP's task fine-tuning are in `curate.evaluation.blip_tasks`. Every
runner takes ``(model, processor, task_dir, batch_size, task)``, ``task`` the suite's task entry."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch

from curate.data.evalsets import sample_captions, sample_image, task_samples
from curate.evaluation.task_types import TASK_TYPES, check_runnable, runner
from curate.training.blip import load_blip, tokenize

log = logging.getLogger(__name__)


def _device(model) -> torch.device:
    return next(model.parameters()).device


def _image(parts: dict):
    image = sample_image(parts)
    if image is None:
        raise ValueError("a task sample has no image")
    return image


@torch.inference_mode()
def encode_images(model, processor, images, batch_size: int):
    """(image embeddings [N, P, H], ITC image features [N, D])."""
    embeds, feats = [], []
    for start in range(0, len(images), batch_size):
        pix = processor.image_processor(images=images[start : start + batch_size], return_tensors="pt")["pixel_values"]
        e = model.image_embeds(pix.to(_device(model)))
        embeds.append(e)
        feats.append(model.image_features(e))
    return torch.cat(embeds), torch.cat(feats)


@torch.inference_mode()
def encode_texts(model, processor, texts, batch_size: int) -> torch.Tensor:
    feats = []
    for start in range(0, len(texts), batch_size):
        ids, attn = tokenize(processor, texts[start : start + batch_size])
        feats.append(model.text_features(ids.to(_device(model)), attn.to(_device(model))))
    return torch.cat(feats)


def retrieval_task(model, processor, task_dir, batch_size, task=None):
    from curate.evaluation.evaluate import retrieval_metrics

    samples = task_samples(task_dir)
    images = [_image(s) for s in samples]
    captions = [sample_captions(s) for s in samples]
    texts = [c for caps in captions for c in caps]
    index = [i for i, caps in enumerate(captions) for _ in caps]
    _, image_feat = encode_images(model, processor, images, batch_size)
    text_feat = encode_texts(model, processor, texts, batch_size)
    metrics = retrieval_metrics((text_feat @ image_feat.T).cpu().numpy(), index)
    return metrics | {"n_images": len(images), "n_captions": len(texts)}


def classification_task(model, processor, task_dir, batch_size, task=None):
    from curate.evaluation.evaluate import classification_metrics

    samples = task_samples(task_dir)
    task_dir = Path(task_dir)
    classnames = [c for c in (task_dir / "classnames.txt").read_text().splitlines() if c.strip()]
    templates = [t for t in (task_dir / "zeroshot_classification_templates.txt").read_text().splitlines() if t.strip()]
    classifier = []
    for name in classnames:
        feats = encode_texts(model, processor, [t.replace("{c}", name) for t in templates], batch_size)
        classifier.append(torch.nn.functional.normalize(feats.mean(0), dim=-1))
    _, image_feat = encode_images(model, processor, [_image(s) for s in samples], batch_size)
    targets = [int(s["cls"].decode("ascii").strip()) for s in samples]
    metrics = classification_metrics((image_feat @ torch.stack(classifier).T).cpu().numpy(), targets)
    return metrics | {"n_samples": len(samples), "n_classes": len(classnames)}


@torch.inference_mode()
def generate_captions(model, processor, images, batch_size: int, max_length: int = 20, min_length: int = 5):
    """Greedy captions from ``[DEC]`` (no prompt, as BLIP pretraining trains the decoder)."""
    out = []
    for start in range(0, len(images), batch_size):
        pix = processor.image_processor(images=images[start : start + batch_size], return_tensors="pt")["pixel_values"]
        ids = model.captioner.generate(
            pixel_values=pix.to(_device(model)),
            do_sample=False,
            num_beams=1,
            max_length=max_length,
            min_length=min_length,
        )
        out.extend(t.strip() for t in processor.tokenizer.batch_decode(ids, skip_special_tokens=True))
    return out


def captioning_task(model, processor, task_dir, batch_size, task=None):
    from curate.evaluation.captioning_metrics import cider

    samples = task_samples(task_dir)
    images = [_image(s) for s in samples]
    references = [sample_captions(s) for s in samples]
    candidates = generate_captions(model, processor, images, batch_size)
    score = cider(references, candidates)
    return {"cider": score, "n_images": len(images), "examples": candidates[:5]}


@torch.inference_mode()
def statement_log_likelihoods(model, processor, image_embeds, statements) -> torch.Tensor:
    """Sum of the decoder's token log-probabilities of each statement (its ``[SEP]`` included)
    given one image's embeddings [1, P, H]."""
    ids, attn = tokenize(processor, statements)
    ids, attn = ids.to(image_embeds.device), attn.to(image_embeds.device)
    logits, labels = model.decoder_logits(ids, attn, image_embeds.expand(len(statements), -1, -1))
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    target = labels[:, 1:]
    mask = target != -100
    picked = logp.gather(-1, target.clamp(min=0)[..., None])[..., 0]
    return (picked * mask).sum(1)


def synthetic_vqa_task(model, processor, task_dir, batch_size, task=None):
    from curate.data.synthetic.vqa import vqa_accuracy

    samples = task_samples(task_dir)
    questions = [json.loads(s["json"]) for s in samples]
    image_embeds, _ = encode_images(model, processor, [_image(s) for s in samples], batch_size)
    scores, by_type = [], {}
    for i, q in enumerate(questions):
        ll = statement_log_likelihoods(model, processor, image_embeds[i : i + 1], q["statements"])
        prediction = q["candidates"][int(ll.argmax())]
        acc = vqa_accuracy(prediction, q["answers"])
        scores.append(acc)
        by_type.setdefault(q["question_type"], []).append(acc)
    metrics = {"vqa_accuracy": float(np.mean(scores)), "n_questions": len(questions)}
    metrics |= {f"vqa_accuracy_{kind}": float(np.mean(v)) for kind, v in sorted(by_type.items())}
    return metrics


def evaluate_task(model, processor, task_dir, task_type: str, batch_size: int = 64, task: dict | None = None) -> dict:
    """A BLIP's metrics on one task folder, by its type's runner (`curate.evaluation.task_types`);
    `task` is the suite's task entry, completed by the registry (a fine-tuned type reads its
    fine-tuning parameters there; their defaults when None)."""
    if task is None:
        task = TASK_TYPES.complete({"type": task_type, "name": task_type, "main_metric": None}, task_type)
    return runner(task_type, "blip")(model, processor, task_dir, batch_size, task)


def _completed(key: str, task: dict) -> dict:
    """A suite's task entry with every parameter of its type (the workflow's config already is)."""
    entry = {k: v for k, v in task.items() if k != "dir"}
    return TASK_TYPES.complete(entry | {"name": entry.get("name", key), "main_metric": entry.get("main_metric")}, key)


def evaluate_blip_suite(model_dir, tasks: dict, batch_size: int = 64, device: str = "cpu") -> list[dict]:
    """DataComp-style records of the BLIP in `model_dir` on `tasks` = ``{key: {"dir", "type",
    "main_metric", "name", ...}}``, in order, on `device` (the job's: `curate.devices.job_device`)."""
    check_runnable(tasks, "blip")
    model, processor = load_blip(model_dir)
    model.to(device)
    records = []
    for key, task in tasks.items():
        metrics = evaluate_task(model, processor, task["dir"], task["type"], batch_size, task=_completed(key, task))
        main = task.get("main_metric")
        if main is not None and main not in metrics:
            raise ValueError(f"task {key!r}: main_metric {main!r} is not one of {sorted(metrics)}")
        metrics["main_metric"] = None if main is None else float(metrics[main])
        records.append({"key": str(key), "dataset": str(task.get("name", key)), "metrics": metrics})
        log.info("task %s: %s", key, {k: v for k, v in metrics.items() if k != "examples"})
    return records
