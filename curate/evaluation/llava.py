"""Evaluating a LLaVA (MoS Table 1): greedy captions of each task's images, CIDEr against their
reference captions."""

from __future__ import annotations

import logging

import torch

from curate.data.evalsets import sample_captions, sample_image, task_samples
from curate.evaluation.captioning_metrics import cider
from curate.evaluation.task_types import check_runnable, runner
from curate.training.llava import _prefix, load_llava

log = logging.getLogger(__name__)


@torch.inference_mode()
def generate_captions(model, processor, images, batch_size: int = 64, max_new_tokens: int = 20) -> list[str]:
    """Greedy captions of PIL `images` (prompt: the image tokens after ``<s>``)."""
    tokenizer = processor.tokenizer
    prefix = _prefix(model, tokenizer)
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        pix = processor.image_processor(images=chunk, return_tensors="pt")["pixel_values"].to(device)
        ids = torch.tensor([prefix] * len(chunk), device=device)
        gen = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            pixel_values=pix,
            do_sample=False,
            max_new_tokens=max_new_tokens,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        out.extend(tokenizer.batch_decode(gen[:, len(prefix) :], skip_special_tokens=True))
    return [text.strip() for text in out]


def read_caption_task(task_dir) -> tuple[list, list[list[str]]]:
    """Images and reference captions of a captioning task: a clip_benchmark wds folder whose
    ``test`` tars hold an image and a ``.txt`` of reference captions (one a line) per sample."""

    images, references = [], []
    for parts in task_samples(task_dir):
        if "txt" not in parts:
            continue
        image = sample_image(parts)
        if image is None:
            continue
        images.append(image)
        references.append(sample_captions(parts))
    return images, references


def evaluate_captioning(model_dir, tasks: dict, batch_size: int = 64, device: str = "cpu") -> list[dict]:
    """DataComp-style records (``key``, ``dataset``, ``metrics`` with ``cider`` and
    ``main_metric``) of the LLaVA in `model_dir` on `tasks` = ``{key: {"dir", "name", ...}}``, on
    ``device``."""
    check_runnable(tasks, "llava")
    model, processor = load_llava(model_dir)
    model.to(device)
    records = []
    for key, task in tasks.items():
        metrics = runner(task["type"], "llava")(model, processor, task["dir"], batch_size)
        metrics["main_metric"] = metrics[task["main_metric"]]
        records.append({"key": str(key), "dataset": str(task.get("name", key)), "metrics": metrics})
        log.info("task %s: CIDEr %.2f, e.g. %s", key, metrics["cider"], metrics["examples"][:3])
    return records


def captioning_task(model, processor, task_dir, batch_size: int) -> dict:
    """CIDEr of greedy captions of a captioning task's images against their references."""
    images, references = read_caption_task(task_dir)
    candidates = generate_captions(model, processor, images, batch_size=batch_size)
    return {"cider": cider(references, candidates), "n_images": len(images), "examples": candidates[:5]}
