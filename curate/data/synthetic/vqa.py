"""Synthetic visual question answering: the tiny analogue of MoS's VQA column (issue 6).

Each sample is a held-out scene with one question about one of its attributes (colour, shape,
count, size, position, background), the attribute's every value as the candidate answers, and
the ground truth answer from the generator. So that a pretrained (not VQA-finetuned) model can
answer by ranking, every candidate also comes as a *statement*: the scene's canonical caption
with that candidate filled in (`curate.data.synthetic.captions.canonical_caption`), which differs
from the others only in the asked attribute. The reference answers are VQA v2's ten per
question, here ten copies of the ground truth, so VQA accuracy (`vqa_accuracy`) is exact match.

Layout (clip_benchmark-like): ``dataset_type.txt`` (``synthetic_vqa``), ``test/nshards.txt``,
``test/0.tar`` with ``key.jpg`` + ``key.json`` (``question``, ``question_type``, ``answer``,
``answers``, ``candidates``, ``statements``). Images come from the task seed stream, at an index
no classification or retrieval task uses, so they are held out from the pool and the other tasks.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from .captions import canonical_caption
from .render import encode_jpeg, render_scene
from .world import ATTRIBUTES, BACKGROUND_ADJECTIVES, COUNT_WORDS, STREAM_TASK, random_scene, rng_for

DATASET_TYPE = "synthetic_vqa"
#: the index of the VQA task in the task seed stream (the classification/retrieval tasks use 0-8)
STREAM_INDEX = 100
#: VQA v2 has ten human answers per question
N_REFERENCE_ANSWERS = 10

QUESTIONS = {
    "colour": "what colour are the shapes?",
    "shape": "what shape are the objects?",
    "count": "how many shapes are there?",
    "size": "are the shapes small or large?",
    "position": "where in the picture are the shapes?",
    "background": "what kind of background is it?",
}


def answer_word(attribute: str, value) -> str:
    """How an attribute value is said as an answer (counts and backgrounds in words)."""
    if attribute == "count":
        return COUNT_WORDS[value]
    if attribute == "background":
        return BACKGROUND_ADJECTIVES[value]
    return str(value)


def question_for(scene, attribute: str) -> dict:
    """One question about `attribute` of `scene`: candidates, their statements, the answer."""
    values = ATTRIBUTES[attribute]
    candidates = [answer_word(attribute, v) for v in values]
    answer = answer_word(attribute, getattr(scene, attribute))
    return {
        "question": QUESTIONS[attribute],
        "question_type": attribute,
        "answer": answer,
        "answers": [answer] * N_REFERENCE_ANSWERS,
        "candidates": candidates,
        "statements": [canonical_caption(scene.replace(**{attribute: v})) for v in values],
    }


def write_vqa_task(out_dir, n_samples: int, seed: int, image_size: int = 64) -> dict:
    """Write the synthetic VQA task under `out_dir`; question types are balanced and shuffled."""
    from .tasks import EVAL_JPEG_QUALITY, _balanced_labels, _write_tars

    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = rng_for(seed, STREAM_TASK, STREAM_INDEX)
    types = list(QUESTIONS)
    kinds = _balanced_labels(rng, n_samples, len(types))
    (out_dir / "dataset_type.txt").write_text(DATASET_TYPE + "\n")

    def samples():
        for i, kind in enumerate(kinds):
            scene = random_scene(rng)
            image = render_scene(scene, image_size, image_size, rng)
            yield (
                f"{i:06d}",
                {
                    "jpg": encode_jpeg(image, EVAL_JPEG_QUALITY),
                    "json": json.dumps(question_for(scene, types[int(kind)])).encode("utf-8"),
                },
            )

    n_shards = _write_tars(samples(), out_dir / "test")
    (out_dir / "test" / "nshards.txt").write_text(f"{n_shards}\n")
    return {
        "task": "vqa",
        "type": DATASET_TYPE,
        "n_samples": int(n_samples),
        "n_shards": n_shards,
        "question_types": types,
    }


def normalise_answer(text: str) -> str:
    """Lower case, punctuation dropped, single spaces (a light form of VQA v2's normalisation)."""
    return " ".join(re.findall(r"[a-z0-9]+", str(text).lower()))


def vqa_accuracy(prediction: str, answers: list[str]) -> float:
    """VQA v2's accuracy of one prediction: the mean over each reference answer left out of
    ``min(1, matches among the other references / 3)``."""
    if not answers:
        raise ValueError("vqa_accuracy needs reference answers")
    pred = normalise_answer(prediction)
    hits = [normalise_answer(a) == pred for a in answers]
    total = sum(hits)
    return float(sum(min(1.0, (total - hit) / 3.0) for hit in hits) / len(answers))
