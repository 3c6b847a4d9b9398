"""Evaluation task types: what a suite's task can be (its ``type``), and who evaluates it.

Each type is one entry of :data:`TASK_TYPES`: the parameters of a suite's task entry and, per
model family (``clip``: open_clip models; ``blip``; ``llava``), the function that evaluates a task
of this type (a ``module:function`` name, imported when a job runs), or the reason none is built.
A family's evaluator (`curate.evaluation.evaluate`, `.blip`, `.llava`) looks its runner up here,
and refuses a suite with a type it cannot run before it loads a model.

Runner signatures, per family: clip ``(model, preprocess, tokenizer, task_dir, task_type,
batch_size)``; blip and llava ``(model, processor, task_dir, batch_size)``; each returns the
task's metrics.
"""

from __future__ import annotations

import importlib

from curate.registry import Registry, optional, required

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
TASK_TYPES.register(
    "vqa", doc="VQA v2", runners={}, unbuilt={"blip": "VQA v2 (BLIP's VQA fine-tuning and answer ranking)"}
)
TASK_TYPES.register("nlvr", doc="NLVR2", runners={}, unbuilt={"blip": "NLVR2 (BLIP's NLVR fine-tuning)"})
TASK_TYPES.register("refcoco", doc="RefCOCO+", runners={}, unbuilt={"blip": "RefCOCO+ (BLIP's grounding fine-tuning)"})


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
