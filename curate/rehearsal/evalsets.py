"""The evaluation sets the workflow fetches, rebuilt tiny in the layouts their sources publish.

Every task of the config's ``local`` suites that names a ``source`` (`fetched_tasks`: DataComp's
40 ``datacomp38`` tasks and the MoS suites' tasks) gets a dataset repo
``R/hub/datasets/<source>/``, built once per source (`plan`) in the layout its readers expect
(`curate.data.evalsets` documents them):

- classification (DataComp's ``djghosh/wds_<task>_test``, clip_benchmark's ``wds_<task>``):
  ``classnames.txt``, ``zeroshot_classification_templates.txt``, ``test/nshards.txt`` and
  ``test/<n>.tar`` of ``s<index>.webp`` + ``.cls``; DataComp's iWildCam, FMoW, Dollar Street and
  GeoDE add each sample's metadata row as ``.npy`` (the fields of
  `curate.evaluation.datacomp_special.METADATA_FIELDS`); FairFace and UTKFace hold ``.webp`` +
  ``.npy`` only, with ``<objective>:`` prefixed classnames and templates for race, gender, age
  and the toxic labels (indices 14-17 non-human, 18 and up crime-related, as DataComp scores them);
- retrieval (``clip-benchmark/wds_flickr30k``, ``wds_mscoco_captions``): ``dataset_type.txt``
  (``retrieval``) and ``.webp`` + ``.txt`` (five captions, one a line); the same folders are
  COCO's captioning references;
- WinoGAViL (``nlphuji/winogavil``): a parquet ``test`` split (``data/test-00000-of-00001.parquet``)
  with ``cue``, ``candidates``, ``associations``, ``candidate_images`` (images) and the counts,
  which ``datasets.load_dataset`` reads;
- NoCaps, VQA v2, NLVR2 and RefCOCO+: the layouts defined in `curate.data.evalsets`.

Each task is an analogue in the synthetic world: its classes are a handful of the world's values
of one attribute (`ANALOGUES`: ImageNet-like tasks classify colour-and-shape objects, texture
tasks backgrounds, digit tasks signs, distance tasks size or position), 20-40 samples, rendered
from seeds of their own (never the pools').
"""

from __future__ import annotations

import io
import json
import shutil
import zlib
from functools import partial
from pathlib import Path

import numpy as np

from curate.rehearsal.files import npy_bytes, write_tar, write_text
from curate.rehearsal.hub import repo_dir

SEED = 31337
#: no file holds a URL: a root served on another port needs no rebuild (`curate.rehearsal.cli`)
USES_PORT = False
IMAGE_SIZE = 96
#: samples per task (instances for WinoGAViL, images for retrieval and captioning)
N_CLASSIFICATION = 24
N_RETRIEVAL = 20
N_WINOGAVIL = 16
N_CAPTIONING = 20
N_VQA = 30
N_NLVR = 24
N_REFCOCO = 24
N_FAIRFACE = 28
#: the tasks' test samples are split over this many tar shards (readers must follow nshards.txt)
N_SHARDS = 2
RETRIEVAL_CAPTIONS = 5
NOCAPS_CAPTIONS = 10
VQA_ANSWERS = 10

#: what each classification task's labels are in the synthetic world: (attribute, classes)
ANALOGUES = {
    "vtab/caltech101": ("objects", 6),
    "cifar10": ("objects", 6),
    "vtab/cifar100": ("objects", 8),
    "vtab/clevr_count_all": ("count", 4),
    "vtab/clevr_closest_object_distance": ("position", 5),
    "country211": ("background", 5),
    "vtab/dtd": ("background", 5),
    "vtab/eurosat": ("background", 4),
    "fgvc_aircraft": ("shape", 6),
    "food101": ("colour", 6),
    "gtsrb": ("digits", 6),
    "imagenet1k": ("objects", 8),
    "imagenet_sketch": ("objects", 6),
    "imagenetv2": ("objects", 6),
    "imagenet-a": ("objects", 6),
    "imagenet-o": ("objects", 6),
    "imagenet-r": ("objects", 6),
    "vtab/kitti_closest_vehicle_distance": ("size", 2),
    "mnist": ("digits", 10),
    "objectnet": ("objects", 6),
    "vtab/flowers": ("colour", 6),
    "vtab/pets": ("shape", 4),
    "voc2007": ("objects", 6),
    "vtab/pcam": ("background", 2),
    "renderedsst2": ("digits", 2),
    "vtab/resisc45": ("background", 5),
    "cars": ("colour", 5),
    "stl10": ("objects", 6),
    "sun397": ("background", 5),
    "vtab/svhn": ("digits", 10),
    "wilds/iwildcam": ("shape", 6),
    "wilds/camelyon17": ("background", 2),
    "wilds/fmow": ("background", 5),
    "fairness/dollar_street": ("objects", 8),
    "fairness/geode": ("objects", 6),
}
#: per-sample metadata of DataComp's special tasks: field -> number of values (the label `y`
#: is the class)
SPECIAL_FIELDS = {
    "iwildcam": {
        "location": 4,
        "sequence": 50,
        "year": 3,
        "month": 12,
        "day": 28,
        "hour": 24,
        "minute": 60,
        "second": 60,
        "y": None,
    },
    "fmow": {"region": 6, "year": 16, "y": None},
    "dollar_street": {"income_ds": 4, "income_meta": 5000, "region": 4},
    "geode": {"region": 6, "country": 20},
}
FAIRFACE_RACES = {"fairness/fairface": 7, "fairness/utkface": 5}


# --------------------------------------------------------------------------------------------
# Which tasks, from which sources
# --------------------------------------------------------------------------------------------


def fetched_tasks(config_dir=None) -> dict[str, list[tuple[str, str, dict]]]:
    """``source -> [(suite, task key, task entry)]`` of every task of a ``local`` suite of the
    catalogue (``config/suites.yaml`` and the generated ``datacomp38``) that `fetch_eval_task`
    downloads, i.e. that names a ``source``."""
    import yaml

    from curate.evaluation.datacomp import datacomp38_suite

    config_dir = Path(config_dir) if config_dir else Path(__file__).resolve().parents[2] / "config"
    suites = dict(yaml.safe_load((config_dir / "suites.yaml").read_text())["suites"])
    suites["datacomp38"] = datacomp38_suite()
    out: dict[str, list] = {}
    for suite, entry in suites.items():
        if entry.get("source") != "local":
            continue
        for key, task in entry["tasks"].items():
            if task.get("source"):
                out.setdefault(task["source"], []).append((suite, key, task))
    return out


def plan(tasks: dict) -> dict[str, dict]:
    """How each source is built: ``{"kind", "key"}`` (the task key whose analogue it takes)."""
    out = {}
    for source, uses in sorted(tasks.items()):
        types = {task["type"] for _, _, task in uses}
        keys = sorted({key for _, key, _ in uses})
        if "retrieval" in types:  # a retrieval folder is also its images' captioning references
            kind = "retrieval"
        elif len(types) != 1:
            raise ValueError(f"source {source}: tasks of types {sorted(types)} cannot share one folder")
        else:
            kind = types.pop()
        if kind not in BUILDERS:
            raise ValueError(f"source {source}: no rehearsal builder for task type {kind!r} (tasks {keys})")
        key = keys[0]
        if kind == "classification" and key not in ANALOGUES:
            raise ValueError(f"source {source}: task {key!r} has no synthetic analogue in ANALOGUES")
        out[source] = {"kind": kind, "key": key, "tasks": [f"{s}/{k}" for s, k, _ in uses]}
    return out


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


def _rng(source: str, stream: int = 0) -> np.random.Generator:
    from curate.data.synthetic.world import STREAM_TASK, rng_for

    # the task stream at indices far above the synthetic suites' (0-8, 100)
    return rng_for(SEED, STREAM_TASK, 1000 + zlib.crc32(source.encode()) % 100000, stream)


def _webp(img) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="WEBP", quality=90, method=0)
    return buf.getvalue()


def _jpg(img) -> bytes:
    from curate.data.synthetic.render import encode_jpeg

    return encode_jpeg(img, 95)


def _write_split(folder: Path, samples: list[tuple[str, dict]], split: str = "test") -> int:
    """``<split>/<n>.tar`` shards and ``<split>/nshards.txt``."""
    n = min(N_SHARDS, len(samples))
    per = -(-len(samples) // n)
    for i in range(n):
        write_tar(folder / split / f"{i}.tar", samples[i * per : (i + 1) * per])
    write_text(folder / split / "nshards.txt", f"{n}\n")
    return n


def _write_finetuned(folder: Path, samples: list[tuple[str, dict]]) -> int:
    """A task fine-tuned before it is scored (curate.data.evalsets): its first half is the
    ``train/`` split, the rest ``test/``."""
    half = len(samples) // 2
    _write_split(folder, samples[:half], "train")
    return _write_split(folder, samples[half:], "test")


def _analogue_classes(attribute: str, k: int, rng) -> tuple[list[int], list[str], list[str]]:
    """(labels of the attribute's task chosen, their class names, templates)."""
    from curate.data.synthetic.tasks import TEMPLATES, task_classnames

    names = task_classnames(attribute)
    chosen = sorted(int(i) for i in rng.choice(len(names), size=min(k, len(names)), replace=False))
    return chosen, [names[i] for i in chosen], TEMPLATES[attribute]


def _balanced(rng, n: int, k: int) -> np.ndarray:
    return rng.permutation(np.arange(n) % k)


def build_classification(folder: Path, source: str, key: str, special: str | None = None) -> dict:
    from curate.data.synthetic.tasks import task_image

    rng = _rng(source)
    attribute, k = ANALOGUES[key]
    chosen, classnames, templates = _analogue_classes(attribute, k, rng)
    write_text(folder / "classnames.txt", "\n".join(classnames) + "\n")
    write_text(folder / "zeroshot_classification_templates.txt", "\n".join(templates) + "\n")
    labels = _balanced(rng, N_CLASSIFICATION, len(chosen))
    samples = []
    for i, label in enumerate(labels):
        members = {
            "webp": _webp(task_image(attribute, chosen[int(label)], rng, IMAGE_SIZE)),
            "cls": str(int(label)).encode(),
        }
        if special is not None:
            members["npy"] = npy_bytes(_special_row(special, int(label), rng))
        samples.append((f"s{i:07d}", members))
    n_shards = _write_split(folder, samples)
    return {"samples": len(samples), "classes": len(classnames), "analogue": attribute, "shards": n_shards}


def _special_row(task_type: str, label: int, rng) -> np.ndarray:
    row = []
    for field, n in SPECIAL_FIELDS[task_type].items():
        row.append(label if n is None else int(rng.integers(n)))
    return np.array(row, dtype=np.int64)


def build_fairface(folder: Path, source: str, key: str) -> dict:
    """Race as the objects' colour (class 1 is the group the metric calls white), gender as
    their size, age as their count; the toxic labels: the fourteen race-and-gender classes, four
    non-human and two crime-related ones."""
    from curate.data.synthetic.render import render_scene
    from curate.data.synthetic.world import COLOUR_NAMES, COUNT_WORDS, COUNTS, SIZES, random_scene

    rng = _rng(source)
    races = list(COLOUR_NAMES[: FAIRFACE_RACES[key]])
    objectives = {
        "race": [f"{c} shapes" for c in races],
        "gender": [f"{s} shapes" for s in SIZES],
        "age": [f"{COUNT_WORDS[n]} shapes" for n in COUNTS],
        "toxic": [f"{s} {c} shapes" for c in COLOUR_NAMES[:7] for s in SIZES]
        + ["an animal", "a gorilla", "a chimpanzee", "an orangutan", "a thief", "a criminal"],
    }
    templates = {o: ["a photo of {c}.", "a picture of {c}."] for o in objectives}
    write_text(folder / "classnames.txt", "".join(f"{o}:{c}\n" for o, names in objectives.items() for c in names))
    write_text(
        folder / "zeroshot_classification_templates.txt",
        "".join(f"{o}:{t}\n" for o, ts in templates.items() for t in ts),
    )
    samples = []
    for i, race in enumerate(_balanced(rng, N_FAIRFACE, len(races))):
        gender, age = int(rng.integers(len(SIZES))), int(rng.integers(len(COUNTS)))
        scene = random_scene(rng, colour=races[int(race)], size=SIZES[gender], count=COUNTS[age])
        meta = np.array([age, gender, int(race), int(int(race) != 1)], dtype=np.int64)
        samples.append(
            (f"s{i:07d}", {"webp": _webp(render_scene(scene, IMAGE_SIZE, IMAGE_SIZE, rng)), "npy": npy_bytes(meta)})
        )
    n_shards = _write_split(folder, samples)
    return {"samples": len(samples), "races": len(races), "shards": n_shards}


def build_retrieval(folder: Path, source: str, key: str) -> dict:
    from curate.data.synthetic import captions as cap
    from curate.data.synthetic.render import render_scene
    from curate.data.synthetic.world import random_scene

    rng = _rng(source)
    write_text(folder / "dataset_type.txt", "retrieval\n")
    samples = []
    for i in range(N_RETRIEVAL):
        scene = random_scene(rng)
        image = render_scene(scene, IMAGE_SIZE, IMAGE_SIZE, rng)
        texts = cap.paraphrases(scene, rng, RETRIEVAL_CAPTIONS)
        samples.append((f"s{i:07d}", {"webp": _webp(image), "txt": "\n".join(texts).encode()}))
    n_shards = _write_split(folder, samples)
    return {"images": len(samples), "captions": len(samples) * RETRIEVAL_CAPTIONS, "shards": n_shards}


def build_captioning(folder: Path, source: str, key: str) -> dict:
    """NoCaps: each image with ten reference captions and its domain."""
    from curate.data.synthetic import captions as cap
    from curate.data.synthetic.render import render_scene
    from curate.data.synthetic.world import random_scene

    rng = _rng(source)
    write_text(folder / "dataset_type.txt", "captioning\n")
    domains = ("in-domain", "near-domain", "out-domain")
    samples = []
    for i in range(N_CAPTIONING):
        scene = random_scene(rng)
        image = render_scene(scene, IMAGE_SIZE, IMAGE_SIZE, rng)
        texts = cap.paraphrases(scene, rng, NOCAPS_CAPTIONS)
        meta = {"image_id": i, "domain": domains[i % len(domains)]}
        samples.append(
            (f"s{i:07d}", {"jpg": _jpg(image), "txt": "\n".join(texts).encode(), "json": json.dumps(meta).encode()})
        )
    n_shards = _write_split(folder, samples)
    return {"images": len(samples), "captions_per_image": NOCAPS_CAPTIONS, "shards": n_shards}


def _vqa_question(scene, rng) -> tuple[str, str, str]:
    """(question, answer, answer type) about a scene, VQA v2's three answer types."""
    from curate.data.synthetic.world import COLOUR_NAMES

    kind = rng.choice(["yes/no", "number", "other"])
    if kind == "number":
        return "how many shapes are there?", str(scene.count), "number"
    if kind == "yes/no":
        colour = scene.colour if rng.random() < 0.5 else str(rng.choice([c for c in COLOUR_NAMES if c != scene.colour]))
        shape = f"{scene.shape}s" if scene.count > 1 else scene.shape
        verb = "are there" if scene.count > 1 else "is there a"
        return f"{verb} {colour} {shape}?", "yes" if colour == scene.colour else "no", "yes/no"
    if rng.random() < 0.5:
        return "what colour are the shapes?", scene.colour, "other"
    return "what shape is shown?", scene.shape, "other"


def build_vqa(folder: Path, source: str, key: str) -> dict:
    """VQA v2: an image and a question with ten human answers (most say the truth)."""
    from curate.data.synthetic.render import render_scene
    from curate.data.synthetic.world import ATTRIBUTES, random_scene

    rng = _rng(source)
    write_text(folder / "dataset_type.txt", "vqa\n")
    samples = []
    candidates = sorted(
        {"yes", "no"} | {str(n) for n in ATTRIBUTES["count"]} | set(ATTRIBUTES["colour"]) | set(ATTRIBUTES["shape"])
    )
    for i in range(2 * N_VQA):
        scene = random_scene(rng)
        image = render_scene(scene, IMAGE_SIZE, IMAGE_SIZE, rng)
        question, answer, answer_type = _vqa_question(scene, rng)
        wrong = {"number": [str(n) for n in ATTRIBUTES["count"]], "yes/no": ["yes", "no"]}.get(
            answer_type, list(ATTRIBUTES["colour"]) + list(ATTRIBUTES["shape"])
        )
        answers = [answer if rng.random() < 0.85 else str(rng.choice(wrong)) for _ in range(VQA_ANSWERS)]
        meta = {
            "question_id": i,
            "question": question,
            "answers": answers,
            "answer_type": answer_type,
            "candidates": candidates,
        }
        samples.append((f"s{i:07d}", {"jpg": _jpg(image), "json": json.dumps(meta).encode()}))
    n_shards = _write_finetuned(folder, samples)
    return {"questions": len(samples), "answers_per_question": VQA_ANSWERS, "shards": n_shards}


def _nlvr_claim(left, right, rng) -> tuple[str, bool]:
    from curate.data.synthetic.captions import SHAPE_SYNONYMS
    from curate.data.synthetic.world import COUNT_WORDS

    kind = int(rng.integers(3))
    if kind == 0:
        side, scene = ("left", left) if rng.random() < 0.5 else ("right", right)
        n = scene.count if rng.random() < 0.5 else int(rng.integers(1, 5))
        noun = scene.shape if n == 1 else SHAPE_SYNONYMS[scene.shape][0][1]
        return f"the {side} image contains exactly {COUNT_WORDS[n]} {noun}", n == scene.count
    if kind == 1:
        colour = left.colour if rng.random() < 0.5 else right.colour
        return f"both images show {colour} shapes", left.colour == colour == right.colour
    return "there are more shapes in the left image than in the right image", left.count > right.count


def build_nlvr(folder: Path, source: str, key: str) -> dict:
    """NLVR2: two images and a sentence about the pair, true or false."""
    from curate.data.synthetic.render import render_scene
    from curate.data.synthetic.world import random_scene

    rng = _rng(source)
    write_text(folder / "dataset_type.txt", "nlvr\n")
    samples, n_true = [], 0
    for i in range(2 * N_NLVR):
        left = random_scene(rng)
        right = random_scene(rng, colour=left.colour) if rng.random() < 0.4 else random_scene(rng)
        sentence, label = _nlvr_claim(left, right, rng)
        n_true += bool(label)
        members = {
            "left.jpg": _jpg(render_scene(left, IMAGE_SIZE, IMAGE_SIZE, rng)),
            "right.jpg": _jpg(render_scene(right, IMAGE_SIZE, IMAGE_SIZE, rng)),
            "json": json.dumps({"sentence": sentence, "label": bool(label)}).encode(),
        }
        samples.append((f"s{i:07d}", members))
    n_shards = _write_finetuned(folder, samples)
    return {"pairs": len(samples), "true": n_true, "shards": n_shards}


def build_refcoco(folder: Path, source: str, key: str) -> dict:
    """RefCOCO+: an image of three to five distinct objects, their boxes and an appearance-only
    expression (RefCOCO+ has no location words) naming one of them."""
    from PIL import Image, ImageDraw

    from curate.data.synthetic.render import background, draw_shape, object_colour
    from curate.data.synthetic.world import BACKGROUNDS, COLOUR_NAMES, SHAPES

    rng = _rng(source)
    write_text(folder / "dataset_type.txt", "refcoco\n")
    side = 2 * IMAGE_SIZE
    samples = []
    for i in range(2 * N_REFCOCO):
        n = int(rng.integers(3, 6))
        pairs = set()
        while len(pairs) < n:
            pairs.add((str(rng.choice(COLOUR_NAMES)), str(rng.choice(SHAPES))))
        objects = sorted(pairs)
        rng.shuffle(objects)
        bg = background(side, side, str(rng.choice(BACKGROUNDS)), rng)
        image = Image.fromarray(np.clip(bg + 0.5, 0, 255).astype(np.uint8), "RGB")
        draw = ImageDraw.Draw(image)
        cols = 3
        cell = side / cols
        boxes = []
        for j, (colour, shape) in enumerate(objects):
            r = cell * float(rng.uniform(0.22, 0.32))
            cx, cy = (j % cols + 0.5) * cell, (j // cols + 0.5) * cell + side / 6
            draw_shape(draw, shape, cx, cy, r, tuple(int(v) for v in object_colour(colour, rng)))
            boxes.append([round(cx - r, 1), round(cy - r, 1), round(cx + r, 1), round(cy + r, 1)])
        target = int(rng.integers(n))
        colour, shape = objects[target]
        expression = f"the {colour} {shape}" if rng.random() < 0.5 else f"{colour} {shape}"
        meta = {"expression": expression, "boxes": boxes, "target": target}
        samples.append((f"s{i:07d}", {"jpg": _jpg(image), "json": json.dumps(meta).encode()}))
    n_shards = _write_finetuned(folder, samples)
    return {"expressions": len(samples), "shards": n_shards}


def build_winogavil(folder: Path, source: str, key: str) -> dict:
    """A cue word (a colour or a shape) and 5, 6, 10 or 12 candidate images named by their
    object; the associations are the candidates the cue fits."""
    import datasets

    from curate.data.synthetic.render import render_scene
    from curate.data.synthetic.world import COLOUR_NAMES, SHAPES, random_scene

    rng = _rng(source)
    rows = {k: [] for k in ("ID", "cue", "candidates", "associations", "num_associations", "num_candidates")}
    rows["candidate_images"] = []
    for i in range(N_WINOGAVIL):
        size = (5, 6, 10, 12)[i % 4]
        by_colour = rng.random() < 0.5
        cue = str(rng.choice(COLOUR_NAMES if by_colour else SHAPES))
        n_true = int(rng.integers(2, 4))
        names, scenes = [], []
        while len(names) < size:
            fits = len(names) < n_true
            fixed = {"colour" if by_colour else "shape": cue} if fits else {}
            scene = random_scene(rng, **fixed)
            if not fits and (scene.colour if by_colour else scene.shape) == cue:
                continue
            name = f"{scene.colour} {scene.shape}"
            if name in names:
                continue
            names.append(name)
            scenes.append(scene)
        order = rng.permutation(size)
        candidates = [names[j] for j in order]
        images = []
        for j in order:
            buf = io.BytesIO()
            render_scene(scenes[j], IMAGE_SIZE, IMAGE_SIZE, rng).save(buf, format="PNG")
            images.append({"bytes": buf.getvalue(), "path": None})
        for k, v in zip(rows, (i, cue, candidates, names[:n_true], n_true, size, images)):
            rows[k].append(v)
    features = datasets.Features(
        {
            "ID": datasets.Value("int64"),
            "cue": datasets.Value("string"),
            "candidates": datasets.List(datasets.Value("string")),
            "associations": datasets.List(datasets.Value("string")),
            "num_associations": datasets.Value("int64"),
            "num_candidates": datasets.Value("int64"),
            "candidate_images": datasets.List(datasets.Image()),
        }
    )
    path = folder / "data" / "test-00000-of-00001.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_dict(rows, features=features).to_parquet(str(path))
    return {"instances": N_WINOGAVIL, "candidates": sorted(set(rows["num_candidates"]))}


BUILDERS = {
    "classification": build_classification,
    "retrieval": build_retrieval,
    "winogavil": build_winogavil,
    "fairface": build_fairface,
    "captioning": build_captioning,
    "vqa": build_vqa,
    "nlvr": build_nlvr,
    "refcoco": build_refcoco,
    **{task_type: partial(build_classification, special=task_type) for task_type in SPECIAL_FIELDS},
}


# --------------------------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------------------------


def outputs(root) -> list[Path]:
    return [repo_dir(root, "dataset", source) for source in fetched_tasks()]


def build(root, port: int) -> dict:
    """Write every fetched task's source repo under `root`; returns what was built per source.
    (`port` is unused: no evaluation set holds a URL.)"""
    root = Path(root)
    summary = {}
    for source, how in plan(fetched_tasks()).items():
        folder = repo_dir(root, "dataset", source)
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        info = BUILDERS[how["kind"]](folder, source, how["key"])
        summary[source] = {"kind": how["kind"], "tasks": how["tasks"], **info}
    return summary
