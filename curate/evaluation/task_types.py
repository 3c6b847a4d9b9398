"""Evaluation task types: what a suite's task can be (its ``type``), and who evaluates it.

Each type is one entry of :data:`TASK_TYPES`: the parameters of a suite's task entry and, per
model family (``clip``: open_clip models; ``blip``; ``llava``), the function that evaluates a task
of this type (a ``module:function`` name, imported when a job runs), or the reason none is built.
A family's evaluator (`curate.evaluation.evaluate`, `.blip`, `.llava`) looks its runner up here,
and refuses a suite with a type it cannot run before it loads a model.

Runner signatures, per family: clip ``(model, preprocess, tokenizer, task_dir, task_type,
batch_size)``; blip ``(model, processor, task_dir, batch_size, task)`` with ``task`` the suite's
completed task entry (a fine-tuned type reads its fine-tuning parameters there); llava ``(model,
processor, task_dir, batch_size)``; each returns the task's metrics.

The types BLIP fine-tunes before scoring (``vqa``, ``nlvr``, ``refcoco``; docs/algorithms.md
§5.1) take the fine-tuning's parameters in the task entry; their defaults are the authors'
settings (BLIP's ``configs/vqa.yaml`` and ``configs/nlvr.yaml`` with the 16 GPUs of BLIP's
commands; ALBEF's ``configs/Grounding.yaml`` on 8 GPUs for RefCOCO+), and a tiny suite sets its own.
"""

from __future__ import annotations

import importlib

from curate.registry import POSITIVE_INT, SEED, Registry, optional, required

TASK_TYPES = Registry(
    "task type",
    key="type",
    common={
        "main_metric": required({"type": ["string", "null"]}, "the metric DataComp's tables read (null: none)"),
        "name": required({"type": "string"}, "the task's display name"),
        "source": optional({"type": "string"}, None, "Hugging Face dataset the task is fetched from"),
    },
)

_CLIP = "curate.evaluation.evaluate"
_SPECIAL = "DataComp's evaluator of this task (curate.evaluation.datacomp_special)"

TASK_TYPES.register(
    "classification",
    doc="zero-shot top-1/top-5 accuracy and mean per-class recall",
    runners={"clip": f"{_CLIP}:evaluate_wds_task", "blip": "curate.evaluation.blip:classification_task"},
)
TASK_TYPES.register(
    "retrieval",
    doc="image and text retrieval recall@k",
    runners={"clip": f"{_CLIP}:evaluate_wds_task", "blip": "curate.evaluation.blip:retrieval_task"},
)
for _type in ("iwildcam", "fmow", "dollar_street", "geode"):
    TASK_TYPES.register(
        _type, doc=f"zero-shot classification scored by {_SPECIAL}", runners={"clip": f"{_CLIP}:evaluate_metadata_task"}
    )
TASK_TYPES.register(
    "fairface",
    doc="FairFace/UTKFace: four objectives per face, no main metric",
    runners={"clip": f"{_CLIP}:evaluate_fairface_task"},
)
TASK_TYPES.register(
    "winogavil",
    doc="WinoGAViL: Jaccard of the top candidates against the associations",
    runners={"clip": f"{_CLIP}:evaluate_winogavil_task"},
)
TASK_TYPES.register(
    "captioning",
    doc="CIDEr of generated captions against the references",
    runners={"blip": "curate.evaluation.blip:captioning_task", "llava": "curate.evaluation.llava:captioning_task"},
)
TASK_TYPES.register(
    "synthetic_vqa",
    doc="the synthetic world's VQA, answers ranked by the model",
    runners={"blip": "curate.evaluation.blip:synthetic_vqa_task"},
)


def finetuning_params(epochs: int, batch_size: int, lr: float, min_lr: float, weight_decay: float) -> dict:
    """The parameters of a task fine-tuned before it is scored, with the authors' values as defaults."""
    rate = {"type": "number", "minimum": 0}
    return {
        "epochs": optional(POSITIVE_INT, epochs, "passes over the task's train split (its lr steps once per epoch)"),
        "max_steps": optional(
            {"type": ["integer", "null"], "minimum": 1}, None, "stop after this many optimiser steps (null: all epochs)"
        ),
        "batch_size": optional(POSITIVE_INT, batch_size, "fine-tuning batch (global; full batches only)"),
        "lr": optional(rate, lr, "AdamW's initial learning rate, cosine-decayed per epoch to min_lr"),
        "min_lr": optional(rate, min_lr, "the cosine schedule's floor"),
        "weight_decay": optional(rate, weight_decay, "AdamW's weight decay (every parameter, as BLIP)"),
        "seed": optional(SEED, 0, "seeds the new heads, the data order and any sampled negatives"),
    }


TASK_TYPES.register(
    "vqa",
    doc="VQA v2 accuracy after BLIP's VQA fine-tuning (question encoder + answer decoder, answers ranked)",
    params=finetuning_params(epochs=10, batch_size=256, lr=2e-5, min_lr=0.0, weight_decay=0.05)
    | {
        "k_test": optional(POSITIVE_INT, 128, "candidates re-scored in full after the first-token pass (BLIP's k_test)")
    },
    runners={"blip": "curate.evaluation.blip_tasks:vqa_task"},
)
TASK_TYPES.register(
    "nlvr",
    doc="NLVR2 accuracy after BLIP's NLVR fine-tuning (text encoder cross-attending to both images)",
    params=finetuning_params(epochs=15, batch_size=256, lr=3e-5, min_lr=0.0, weight_decay=0.05),
    runners={"blip": "curate.evaluation.blip_tasks:nlvr_task"},
)
TASK_TYPES.register(
    "refcoco",
    doc="RefCOCO+ accuracy: the candidate box whose crop the fine-tuned ITM head matches best",
    params=finetuning_params(epochs=5, batch_size=256, lr=1e-5, min_lr=1e-6, weight_decay=0.02),
    runners={"blip": "curate.evaluation.blip_tasks:refcoco_task"},
)


def check_runnable(tasks: dict, family: str) -> None:
    """Raise, naming the task, if a task of ``tasks`` (``{key: {"type", ...}}``) has a type this
    family cannot evaluate: before any model is loaded."""
    for key, task in tasks.items():
        entry = TASK_TYPES[task["type"]]
        if family in entry.spec.get("unbuilt", {}):
            raise NotImplementedError(f"task {key!r}: no evaluator for {entry.unbuilt[family]} is built")
        if family not in entry.runners:
            runs = sorted(name for name, e in TASK_TYPES.items() if family in e.runners)
            raise ValueError(f"task {key!r}: {family} models do not evaluate {task['type']!r} tasks (they do: {runs})")


def runner(task_type: str, family: str):
    """The function that evaluates a task of ``task_type`` for a model of ``family``."""
    check_runnable({task_type: {"type": task_type}}, family)
    module, _, name = TASK_TYPES[task_type].runners[family].partition(":")
    return getattr(importlib.import_module(module), name)
