"""Language identification through fastText's own API (docs/algorithms.md §2, basic / text-based /
image-based caption filters).

DataComp's baselines call fastText's ``lid.176.bin`` on every caption and keep the ones whose
top-1 label is ``en``; the caption's newlines are replaced by spaces first (fastText's
``predict`` refuses a ``"\\n"``). This module reproduces that call path exactly:
:func:`load_langid` is ``fasttext.load_model``, :func:`predict_languages` is the top-1
``model.predict`` label without its ``__label__`` prefix.

The real model (``lid.176.bin``) is a ``models`` entry (``fasttext-lid176``) fetched by the
workflow's ``fetch_model`` rule: :func:`load_langid` takes its folder as well as a file. Offline runs on the embedded synthetic pool use
a small supervised fastText model trained here by :func:`train_langid` on captions of the
synthetic world (English from the caption grammar; German, Spanish and French from
``curate.data.synthetic.captions.non_english_caption``, the very function the pool uses for its
non-English noise; optionally its gibberish as a label of its own). It is saved with
``model.save_model`` and read back with :func:`load_langid`, so the workflow runs the same code
on either model.

Determinism (fasttext-numpy2 0.10.4): with ``thread > 1`` fastText trains Hogwild-style
(lock-free, racing threads), so the bytes vary from run to run; with ``thread=1`` it is
deterministic *only if* the 90 % of the input matrix that fastText leaves uninitialised with one
thread holds zeros (see :func:`train_langid`), which is why training runs in a child process
whose ``malloc`` returns zeroed memory. Then the same seed gives byte-identical ``.bin`` files
(checked by ``tests/unit/test_langid.py``).

DataComp's LAION-2B filter decides English with **gcld3** instead (Google's CLD3, whose model ships
inside the package): :func:`gcld3_languages` is ``NNetLanguageIdentifier(min_num_bytes=0,
max_num_bytes=1000).FindLanguage(text).language`` on the text with newlines replaced, as DataComp
calls it. :func:`english_mask` runs either kind of detector from its ``langid_models`` entry.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

__all__ = [
    "LABEL_PREFIX",
    "ENGLISH",
    "GIBBERISH_LABEL",
    "STREAM_LANGID",
    "load_langid",
    "predict_languages",
    "is_english",
    "gcld3_languages",
    "english_mask",
    "synthetic_langid_corpus",
    "train_langid",
    "accuracy_english",
]

LABEL_PREFIX = "__label__"
ENGLISH = "en"
#: label of the synthetic pool's gibberish captions when they are trained as a class of their
#: own (BCP-47 "und", undetermined); ``None`` in :func:`train_langid` leaves them out
GIBBERISH_LABEL = "und"
#: seed stream of the langid corpus (``curate.data.synthetic.world.rng_for``); distinct from the
#: world's pool / task / curated / downstream streams (1-4), so the classifier never trains on
#: a caption drawn for the pool
STREAM_LANGID = 0x4C49  # "LI"

# fastText hyper-parameters of the synthetic detector: character n-grams (lid.176 uses them
# too) and word bigrams; a small hash table keeps the file at about a megabyte.
_TRAIN_ARGS = dict(
    lr=0.5,
    dim=16,
    epoch=10,
    wordNgrams=2,
    minn=2,
    maxn=4,
    bucket=20_000,
    minCount=1,
    loss="softmax",
    thread=1,
    verbose=0,
)


# --------------------------------------------------------------------------- loading / predicting
def load_langid(path):
    """Load a fastText language-ID model (``fasttext.load_model``): ``lid.176.bin`` or a model
    written by :func:`train_langid`. ``path`` may be the folder ``fetch_model`` put a ``library:
    url`` model in (the file its ``fetch.json`` names)."""
    import fasttext

    from curate.scoring.pretrained import fetched_file

    path = Path(path)
    if path.is_dir():
        path = fetched_file(path)
    if not path.is_file():
        raise FileNotFoundError(f"fastText language-ID model not found: {path}")
    return fasttext.load_model(str(path))


def _clean(text) -> str:
    """A caption as DataComp hands it to fastText: newlines replaced by spaces.

    Non-strings (None / NaN from a parquet column) become ``""``; fastText then predicts from the
    end-of-sentence token alone (a label is still returned).
    """
    if not isinstance(text, str):
        return ""
    return text.replace("\n", " ")


def predict_languages(model, texts: Iterable[str], batch_size: int = 65_536) -> list[str]:
    """Top-1 language of each text: ``model.predict(text)`` label without ``"__label__"``
    (docs/algorithms.md §2, basic_filter).

    As in DataComp, every ``"\\n"`` is replaced by ``" "`` before predicting (fastText rejects
    newlines; other control characters are whitespace to its tokenizer). Texts are predicted in
    batches through fastText's multi-line ``predict``. A text for which fastText returns no
    label (not expected with ``k=1, threshold=0``) gets ``""``.
    """
    texts = [_clean(t) for t in texts]
    out: list[str] = []
    for a in range(0, len(texts), int(batch_size)):
        labels, _probs = model.predict(texts[a : a + int(batch_size)], k=1)
        for lab in labels:
            out.append(
                lab[0][len(LABEL_PREFIX) :]
                if len(lab) and lab[0].startswith(LABEL_PREFIX)
                else (lab[0] if len(lab) else "")
            )
    return out


def is_english(model, texts: Iterable[str]) -> np.ndarray:
    """Boolean mask: fastText's top-1 language is ``en`` (docs/algorithms.md §2)."""
    langs = predict_languages(model, texts)
    return np.fromiter((lang == ENGLISH for lang in langs), dtype=bool, count=len(langs))


def gcld3_languages(texts: Iterable[str], min_num_bytes: int = 0, max_num_bytes: int = 1000) -> list[str]:
    """gcld3's language of each text, as DataComp's LAION-2B filter asks it (docs/algorithms.md §2):
    one ``NNetLanguageIdentifier(min_num_bytes, max_num_bytes)`` and ``FindLanguage(text=...)
    .language`` on the text with newlines replaced by spaces. gcld3 answers for any input, its
    "und" included (and a language even for an empty text); non-strings count as ``""``."""
    import gcld3

    detector = gcld3.NNetLanguageIdentifier(min_num_bytes=int(min_num_bytes), max_num_bytes=int(max_num_bytes))
    return [detector.FindLanguage(text=_clean(t)).language for t in texts]


def english_mask(detector: dict, model_path, texts: Sequence) -> np.ndarray:
    """Boolean mask of the texts a ``langid_models`` entry (``detector``, completed) calls English:
    fastText's top-1 label (``model_path``: its file or fetched folder) or gcld3's language
    (``model_path`` None: its model ships inside the package)."""
    texts = list(texts)
    if detector["library"] == "gcld3":
        langs = gcld3_languages(texts, detector["min_num_bytes"], detector["max_num_bytes"])
        return np.fromiter((lang == ENGLISH for lang in langs), dtype=bool, count=len(langs))
    if detector["library"] != "fasttext":
        raise ValueError(f"unknown language detector library {detector['library']!r}")
    return is_english(load_langid(model_path), texts)


# --------------------------------------------------------------------------- synthetic detector
def synthetic_langid_corpus(
    seed: int,
    n_per_language: int = 1500,
    split: int = 0,
    gibberish_label: str | None = GIBBERISH_LABEL,
) -> list[tuple[str, str]]:
    """Labelled captions of the synthetic world: ``[(language, caption), ...]``.

    ``n_per_language`` captions of each of ``en``, ``de``, ``es``, ``fr`` (and of
    ``gibberish_label`` unless it is None). English mixes what the pool writes: paraphrases
    (most), canonical captions, medium-phrase captions and sign captions. Non-English captions
    come from ``captions.non_english_caption`` (which draws the language itself; drawing goes
    on until every language has its count). ``split`` selects an independent draw
    (0 = training, 1 = held out, ...). Same arguments, same list.
    """
    from curate.data.synthetic import captions as cap
    from curate.data.synthetic.pool import random_sign_text
    from curate.data.synthetic.world import random_scene, rng_for

    n = int(n_per_language)
    if n < 1:
        raise ValueError(f"n_per_language must be >= 1, got {n}")
    rng = rng_for(seed, STREAM_LANGID, int(split))
    out: list[tuple[str, str]] = []
    for _ in range(n):
        u = rng.random()
        if u < 0.70:
            text = cap.paraphrase(random_scene(rng), rng)
        elif u < 0.80:
            text = cap.canonical_caption(random_scene(rng))
        elif u < 0.90:
            text = cap.medium_phrase_caption(random_scene(rng), rng)
        else:
            text = cap.sign_caption(random_sign_text(rng), rng)
        out.append((ENGLISH, text))
    counts = {lang: 0 for lang in cap.NON_ENGLISH_LANGUAGES}
    for _ in range(100 * n * len(counts)):
        if min(counts.values()) >= n:
            break
        text, lang = cap.non_english_caption(random_scene(rng), rng)
        if counts[lang] < n:
            counts[lang] += 1
            out.append((lang, text))
    if gibberish_label is not None:
        out += [(gibberish_label, cap.gibberish(rng)) for _ in range(n)]
    return out


def train_langid(
    out_path,
    seed: int,
    n_per_language: int = 1500,
    gibberish_label: str | None = GIBBERISH_LABEL,
    verify: bool = True,
    **fasttext_args,
):
    """Train the synthetic pool's language detector and write it to ``out_path``.

    A supervised fastText model (``fasttext.train_supervised``, ``thread=1``, ``seed=seed``)
    on :func:`synthetic_langid_corpus` (split 0), lines shuffled by a generator seeded from
    ``seed``, labels ``__label__en``, ``__label__de``, ``__label__es``, ``__label__fr`` (and
    ``__label__und`` for gibberish unless ``gibberish_label`` is None). Saved with
    ``model.save_model`` and returned as loaded back by :func:`load_langid`, so callers use
    exactly the bytes on disk. ``fasttext_args`` override the defaults (``thread`` other than 1
    is refused: Hogwild training with several threads is not reproducible).

    **fastText initialisation quirk.** With ``thread=1`` fastText initialises only the first
    10 % of the input matrix (``DenseMatrix::uniformThread`` fills blocks of ``m*n/10`` values,
    one block per thread); upstream leaves the rest at zero, but the fasttext-numpy2 0.10.4
    build leaves it *uninitialised*: whatever the heap held, so training in a busy process
    randomly diverges ("RuntimeError: Encountered NaN") or gives different bytes. Training
    therefore runs in a fresh child process with glibc's ``MALLOC_PERTURB_=255`` (every
    ``malloc`` returns zero-filled memory), which restores upstream's zeros. With ``verify``
    the child trains twice and refuses to save unless both models are identical.

    Deterministic: same seed and arguments -> byte-identical file (tested). The fastText
    ``seed`` only seeds that 10 % initialisation (softmax loss with one label per line draws
    nothing else); the corpus and its order come from ``seed`` through ``rng_for``.
    """
    from curate.data.synthetic.world import rng_for

    args = dict(_TRAIN_ARGS)
    args.update(fasttext_args)
    if int(args.get("thread", 1)) != 1:
        raise ValueError("train_langid trains with thread=1 (multi-threaded fastText is not reproducible)")
    args["thread"] = 1
    args["seed"] = int(seed)
    corpus = synthetic_langid_corpus(seed, n_per_language, split=0, gibberish_label=gibberish_label)
    order = rng_for(seed, STREAM_LANGID, 1_000).permutation(len(corpus))
    lines = [f"{LABEL_PREFIX}{corpus[i][0]} {_clean(corpus[i][1])}\n" for i in order]

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, train_file = tempfile.mkstemp(prefix=".langid-train-", suffix=".txt", dir=out_path.parent)
    tmp_out = out_path.with_name(f".{out_path.name}.{os.getpid()}.tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.writelines(lines)
        env = dict(os.environ, MALLOC_PERTURB_="255", OMP_NUM_THREADS="1")
        proc = subprocess.run(
            [sys.executable, "-c", _TRAIN_CHILD, train_file, str(tmp_out), json.dumps(args), "1" if verify else "0"],
            env=env,
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"fastText training of {out_path} failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}"
            )
        os.replace(tmp_out, out_path)
    finally:
        os.unlink(train_file)
        if tmp_out.exists():
            tmp_out.unlink()
    return load_langid(out_path)


# The child process of train_langid: fastText's own API only.
_TRAIN_CHILD = """
import json, sys
import numpy as np
import fasttext
train_file, out_file, args, verify = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4] == "1"
model = fasttext.train_supervised(input=train_file, **args)
if verify:
    again = fasttext.train_supervised(input=train_file, **args)
    same = (np.array_equal(model.get_input_matrix(), again.get_input_matrix())
            and np.array_equal(model.get_output_matrix(), again.get_output_matrix()))
    if not same:
        sys.exit("fastText training is not reproducible here: two runs with the same seed differ")
model.save_model(out_file)
"""


def accuracy_english(model, labelled: Sequence[tuple[str, str]]) -> float:
    """Fraction of ``(language, text)`` pairs whose English / not-English call is right."""
    if not labelled:
        raise ValueError("no labelled texts")
    truth = np.array([lang == ENGLISH for lang, _ in labelled])
    pred = is_english(model, [t for _, t in labelled])
    return float(np.mean(truth == pred))
