"""The synthetic world's analogues of MoS Table 3's fine-tuned tasks: VQA v2, NLVR2, RefCOCO+.

Each is written in the layout a real copy of the task has (`curate.data.evalsets`): a ``train/``
split the model is fine-tuned on and a ``test/`` split it is scored on, both clip_benchmark-style
webdataset shards, every sample generated from the world's ground truth.

- **VQA** (``type: vqa``): a scene and one question about its colour, shape, count, size,
  position or background, or a yes/no question about its colour or shape. Ten "human" answers,
  as VQA v2 has: each annotator gives the true answer with probability ``ANNOTATOR_AGREEMENT``,
  else another answer of the same kind, so VQA accuracy's ``min(#matches / 3, 1)`` is exercised.
  ``answer_type`` is VQA v2's (``yes/no``, ``number``, ``other``); ``candidates`` is the task's
  one answer list (every answer any question can have), as BLIP ranks VQA v2's answer list.
- **NLVR2** (``type: nlvr``): two scenes (``left.jpg``, ``right.jpg``) and a statement about
  both, true or false (balanced): both show a colour, both show a shape, the left has more (or
  fewer) shapes than the right, the left's shapes are larger (or smaller), one shows one colour
  and the other another. The scenes are drawn so that the statement has the label drawn.
- **RefCOCO+** (``type: refcoco``): a scene of two to four objects, each its own colour and shape
  (no two alike), their boxes, and an expression naming one of them by its appearance: its colour
  ("the red one"), its shape ("the circle") or both ("the red circle"), whichever identify it
  among the others (chosen at random when several do). Like RefCOCO+'s, the expressions never
  use location words: RefCOCO+ was collected without them (its difference from RefCOCO).

Images come from the task seed stream at indices no other task uses (``STREAM_INDEX``), the
train and test splits from distinct cells, so both are held out from the pool and from each other.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .captions import SHAPE_SYNONYMS
from .render import _composite, background, draw_shape, encode_jpeg, object_colour, render_scene
from .vqa import QUESTIONS, answer_word
from .world import (
    ATTRIBUTES,
    BACKGROUNDS,
    COLOUR_NAMES,
    SHAPES,
    STREAM_TASK,
    other_value,
    random_scene,
    rng_for,
)

#: the task seed stream's index of each task (synthetic VQA uses 100, the suite's tasks 0-8)
STREAM_INDEX = {"vqa": 101, "nlvr": 102, "refcoco": 103}
SPLITS = ("test", "train")
#: VQA v2 has ten human answers per question
N_ANSWERS = 10
#: the chance that one synthetic annotator gives the true answer
ANNOTATOR_AGREEMENT = 0.85
#: RefCOCO+ images are larger than the model's input, so that an object's crop keeps detail
REFCOCO_IMAGE_SIZE = 128
REFCOCO_OBJECTS = (2, 3, 4)


def split_rng(task: str, seed: int, split: str) -> np.random.Generator:
    return rng_for(seed, STREAM_TASK, STREAM_INDEX[task], SPLITS.index(split))


# ---------------------------------------------------------------------------------------------
# VQA


#: yes/no questions: about the scene's colour or its shape
YES_NO_QUESTIONS = {"colour": "are the shapes {}?", "shape": "are there any {}?"}
VQA_KINDS = (*QUESTIONS, "yes/no")


def vqa_answer_list() -> list[str]:
    """Every answer a synthetic VQA question can have (the list BLIP ranks), in a fixed order."""
    answers = [answer_word(attribute, v) for attribute, values in ATTRIBUTES.items() for v in values]
    return [*answers, "yes", "no"]


def _plural(shape: str) -> str:
    return SHAPE_SYNONYMS[shape][0][1]


def vqa_question(scene, kind: str, rng: np.random.Generator) -> dict:
    """One question of `kind` (an attribute, or "yes/no") about `scene`: the question, the true
    answer, its answer type and the ten annotators' answers."""
    if kind == "yes/no":
        attribute = str(rng.choice(list(YES_NO_QUESTIONS)))
        asked = (
            getattr(scene, attribute) if rng.random() < 0.5 else other_value(rng, attribute, getattr(scene, attribute))
        )
        word = asked if attribute == "colour" else _plural(asked)
        question = YES_NO_QUESTIONS[attribute].format(word)
        answer = "yes" if asked == getattr(scene, attribute) else "no"
        others = ["no" if answer == "yes" else "yes"]
        answer_type = "yes/no"
    else:
        question = QUESTIONS[kind]
        answer = answer_word(kind, getattr(scene, kind))
        others = [answer_word(kind, v) for v in ATTRIBUTES[kind] if v != getattr(scene, kind)]
        answer_type = "number" if kind == "count" else "other"
    answers = [
        answer if rng.random() < ANNOTATOR_AGREEMENT else others[int(rng.integers(len(others)))]
        for _ in range(N_ANSWERS)
    ]
    return {"question": question, "answer": answer, "answer_type": answer_type, "answers": answers}


def _vqa_samples(n: int, rng: np.random.Generator, image_size: int):
    from .tasks import EVAL_JPEG_QUALITY, _balanced_labels

    candidates = vqa_answer_list()
    for i, kind in enumerate(_balanced_labels(rng, n, len(VQA_KINDS))):
        scene = random_scene(rng)
        image = render_scene(scene, image_size, image_size, rng)
        q = vqa_question(scene, VQA_KINDS[int(kind)], rng)
        meta = {k: q[k] for k in ("question", "answers", "answer_type")} | {"candidates": candidates}
        yield f"{i:06d}", {"jpg": encode_jpeg(image, EVAL_JPEG_QUALITY), "json": _json(meta)}


# ---------------------------------------------------------------------------------------------
# NLVR2

NLVR_KINDS = ("both_colour", "both_shape", "more", "fewer", "larger", "smaller", "one_each")


def _draw_until(rng, accept, max_tries: int = 1000):
    for _ in range(max_tries):
        left, right = random_scene(rng), random_scene(rng)
        if accept(left, right):
            return left, right
    raise RuntimeError("no scene pair satisfies the statement")  # pragma: no cover - each kind has many


def nlvr_pair(kind: str, label: bool, rng: np.random.Generator) -> tuple:
    """``(left scene, right scene, sentence)`` for a statement of `kind` whose truth is `label`."""
    if kind in ("both_colour", "both_shape"):
        attribute = "colour" if kind == "both_colour" else "shape"
        value = ATTRIBUTES[attribute][int(rng.integers(len(ATTRIBUTES[attribute])))]
        left, right = random_scene(rng, **{attribute: value}), random_scene(rng, **{attribute: value})
        if not label:  # one image (or both) shows another value
            which = int(rng.integers(3))
            if which in (0, 2):
                left = left.replace(**{attribute: other_value(rng, attribute, value)})
            if which in (1, 2):
                right = right.replace(**{attribute: other_value(rng, attribute, value)})
        word = value if attribute == "colour" else _plural(value)
        sentence = f"both images show {value} shapes." if attribute == "colour" else f"both images contain {word}."
        return left, right, sentence
    if kind in ("more", "fewer"):
        sign = 1 if kind == "more" else -1
        left, right = _draw_until(rng, lambda a, b: ((a.count - b.count) * sign > 0) == label)
        return left, right, f"the left image has {kind} shapes than the right image."
    if kind in ("larger", "smaller"):
        big, small = ("large", "small") if kind == "larger" else ("small", "large")
        left, right = _draw_until(rng, lambda a, b: (a.size == big and b.size == small) == label)
        return left, right, f"the shapes in the left image are {kind} than those in the right image."
    if kind == "one_each":
        a, b = (str(c) for c in rng.choice(COLOUR_NAMES, size=2, replace=False))
        if label:
            first, second = (a, b) if rng.random() < 0.5 else (b, a)
            left, right = random_scene(rng, colour=first), random_scene(rng, colour=second)
        else:
            left, right = _draw_until(rng, lambda x, y: {x.colour, y.colour} != {a, b})
        return left, right, f"one image shows {a} shapes and the other shows {b} shapes."
    raise ValueError(f"unknown NLVR statement kind {kind!r}")


def nlvr_truth(kind: str, left, right, sentence: str) -> bool:
    """Whether the statement of `kind` holds for the pair (the label, recomputed from the scenes)."""
    words = sentence.rstrip(".").split()
    if kind == "both_colour":
        return left.colour == right.colour == words[3]
    if kind == "both_shape":
        return _plural(left.shape) == _plural(right.shape) == words[3]
    if kind == "more":
        return left.count > right.count
    if kind == "fewer":
        return left.count < right.count
    if kind == "larger":
        return left.size == "large" and right.size == "small"
    if kind == "smaller":
        return left.size == "small" and right.size == "large"
    return {left.colour, right.colour} == {words[3], words[-2]}


def _nlvr_samples(n: int, rng: np.random.Generator, image_size: int):
    from .tasks import EVAL_JPEG_QUALITY, _balanced_labels

    kinds = _balanced_labels(rng, n, len(NLVR_KINDS))
    labels = _balanced_labels(rng, n, 2)
    for i, (kind, label) in enumerate(zip(kinds, labels)):
        kind = NLVR_KINDS[int(kind)]
        left, right, sentence = nlvr_pair(kind, bool(label), rng)
        if nlvr_truth(kind, left, right, sentence) != bool(label):  # pragma: no cover - a generator bug
            raise RuntimeError(f"NLVR statement {sentence!r} is not {bool(label)} of {left} and {right}")
        images = [render_scene(scene, image_size, image_size, rng) for scene in (left, right)]
        yield (
            f"{i:06d}",
            {
                "left.jpg": encode_jpeg(images[0], EVAL_JPEG_QUALITY),
                "right.jpg": encode_jpeg(images[1], EVAL_JPEG_QUALITY),
                "json": _json({"sentence": sentence, "label": bool(label)}),
            },
        )


# ---------------------------------------------------------------------------------------------
# RefCOCO+


def refcoco_scene(rng: np.random.Generator, image_size: int = REFCOCO_IMAGE_SIZE):
    """``(image, objects)``: two to four objects, no two of the same colour and shape, each in its
    own cell of a 3 x 3 grid, over a background; ``objects`` = ``[{"colour", "shape", "box"}]``
    with ``box`` = ``[x0, y0, x1, y1]`` in pixels."""
    n = int(rng.choice(REFCOCO_OBJECTS))
    # draw attributes so that objects share a colour or a shape often (expressions need both words)
    kinds: list[tuple[str, str]] = []
    while len(kinds) < n:
        if kinds and rng.random() < 0.6:
            colour, shape = kinds[int(rng.integers(len(kinds)))]
            if rng.random() < 0.5:
                colour = str(rng.choice(COLOUR_NAMES))
            else:
                shape = str(rng.choice(SHAPES))
        else:
            colour, shape = str(rng.choice(COLOUR_NAMES)), str(rng.choice(SHAPES))
        if (colour, shape) not in kinds:
            kinds.append((colour, shape))
    cells = rng.permutation(9)[:n]
    side = float(image_size)
    arr = background(image_size, image_size, str(rng.choice(BACKGROUNDS)), rng)
    objects = []
    for (colour, shape), cell in zip(kinds, cells):
        row, col = divmod(int(cell), 3)
        r = side * float(rng.uniform(0.09, 0.13))
        cx = (col + 0.5) * side / 3 + float(rng.uniform(-1, 1)) * max(0.0, side / 6 - r) * 0.8
        cy = (row + 0.5) * side / 3 + float(rng.uniform(-1, 1)) * max(0.0, side / 6 - r) * 0.8
        mask = Image.new("L", (image_size * 2, image_size * 2), 0)
        draw_shape(ImageDraw.Draw(mask), shape, cx * 2, cy * 2, r * 2, 255)
        arr = _composite(arr, mask, object_colour(colour, rng))
        box = [max(0.0, cx - r), max(0.0, cy - r), min(side, cx + r), min(side, cy + r)]
        objects.append({"colour": colour, "shape": shape, "box": [round(v, 1) for v in box]})
    image = Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8), "RGB")
    return image, objects


def referring_expression(objects: list[dict], target: int, rng: np.random.Generator) -> str:
    """An expression that names ``objects[target]`` by appearance, unique among `objects`."""
    me = objects[target]
    others = [o for i, o in enumerate(objects) if i != target]
    options = []
    if all(o["colour"] != me["colour"] for o in others):
        options.append(f"the {me['colour']} one")
    if all(o["shape"] != me["shape"] for o in others):
        options.append(f"the {me['shape']}")
    options.append(f"the {me['colour']} {me['shape']}")  # unique: no two objects are alike
    return options[int(rng.integers(len(options)))]


def _refcoco_samples(n: int, rng: np.random.Generator, image_size: int):
    from .tasks import EVAL_JPEG_QUALITY

    for i in range(n):
        image, objects = refcoco_scene(rng, image_size)
        target = int(rng.integers(len(objects)))
        meta = {
            "expression": referring_expression(objects, target, rng),
            "boxes": [o["box"] for o in objects],
            "target": target,
        }
        yield f"{i:06d}", {"jpg": encode_jpeg(image, EVAL_JPEG_QUALITY), "json": _json(meta)}


# ---------------------------------------------------------------------------------------------
# Writing a task


def _json(meta: dict) -> bytes:
    return json.dumps(meta, sort_keys=True).encode("utf-8")


_WRITERS = {"vqa": _vqa_samples, "nlvr": _nlvr_samples, "refcoco": _refcoco_samples}
_IMAGE_SIZES = {"vqa": 64, "nlvr": 64, "refcoco": REFCOCO_IMAGE_SIZE}


def write_finetuned_task(out_dir, task_type: str, n_test: int, n_train: int, seed: int) -> dict:
    """Write the synthetic `task_type` task (``vqa``, ``nlvr`` or ``refcoco``) under `out_dir`:
    ``dataset_type.txt``, ``test/`` with `n_test` samples and ``train/`` with `n_train`."""
    from .tasks import _write_tars

    if task_type not in _WRITERS:
        raise ValueError(f"no synthetic {task_type!r} task (known: {sorted(_WRITERS)})")
    if n_test < 1 or n_train < 1:
        raise ValueError(f"a {task_type} task needs test and train samples, got {n_test} and {n_train}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "dataset_type.txt").write_text(task_type + "\n")
    summary = {"type": task_type, "n_test": int(n_test), "n_train": int(n_train)}
    for split, n in (("test", n_test), ("train", n_train)):
        rng = split_rng(task_type, seed, split)
        n_shards = _write_tars(_WRITERS[task_type](n, rng, _IMAGE_SIZES[task_type]), out_dir / split)
        (out_dir / split / "nshards.txt").write_text(f"{n_shards}\n")
        summary[f"{split}_shards"] = n_shards
    return summary
