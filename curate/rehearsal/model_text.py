"""The text resources DataComp's baselines download, tiny, in their real formats.

- fastText's ``lid.176.bin``: a supervised fastText model saved by fastText itself, with lid.176's
  label names (``__label__en``, ``__label__de``, ``__label__es``, ``__label__fr``), trained on the
  synthetic world's captions in those languages by the workflow's own
  `curate.scoring.langid.train_langid` (byte-identical for a seed).
- nltk_data's ``wordnet.zip``: a zip holding ``wordnet/`` in WordNet 3.0's database format
  (``lexnames``, ``data.{noun,verb,adj,adv}`` whose lines start with their own byte offsets,
  sorted ``index.{pos}``, ``index.sense``, ``cntlist.rev``, ``{pos}.exc``), which
  ``nltk.corpus.reader.WordNetCorpusReader`` reads. Its synsets are those the synthetic world's
  captions need: one noun synset per shape (its one-word synonyms as lemmas, under a ``shape``
  hypernym), one per colour (under ``chromatic_color``), and the size adjectives with their
  similar-to satellites. `wordnet_files` gives each synset's offset, `shape_wnids` the shapes' ids
  in ImageNet's form (``n`` + offset), an ImageNet-21k-like synset list for the text-based filter.
"""

from __future__ import annotations

from pathlib import Path

from curate.rehearsal.model_common import write_zip

#: lid.176's labels that the synthetic world writes (its gibberish gets no label of its own)
LID_LANGUAGES = ("en", "de", "es", "fr")


def build_lid_model(path, seed: int, n_per_language: int = 400) -> Path:
    """A tiny ``lid.176.bin`` at `path`."""
    from curate.scoring.langid import train_langid

    train_langid(path, seed=seed, n_per_language=n_per_language, gibberish_label=None, verify=False)
    return Path(path)


# --------------------------------------------------------------------------- WordNet
#: WordNet 3.0's lexicographer files, by number (the ``lexnames`` file)
LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body "
    "noun.cognition noun.communication noun.event noun.feeling noun.food noun.group noun.location "
    "noun.motive noun.object noun.person noun.phenomenon noun.plant noun.possession noun.process "
    "noun.quantity noun.relation noun.shape noun.state noun.substance noun.time verb.body verb.change "
    "verb.cognition verb.communication verb.competition verb.consumption verb.contact verb.creation "
    "verb.emotion verb.motion verb.perception verb.possession verb.social verb.stative verb.weather adj.ppl"
).split()
POS_NUMBER = {"n": 1, "v": 2, "a": 3, "r": 4, "s": 5}
FILE_OF = {"n": "noun", "v": "verb", "a": "adj", "s": "adj", "r": "adv"}
HEADER = (
    "Tiny synthetic lexical database in the file format of WordNet 3.0 Copyright 2006 by Princeton University.",
    "Its words and synsets are the synthetic world's of curate's rehearsal, not WordNet's.",
)


def wordnet_synsets() -> list[dict]:
    """The tiny WordNet's synsets: ``{"id", "pos", "lex", "lemmas", "gloss", "pointers": [(symbol, id)]}``
    (ids are names like ``shape.n.01``; offsets are assigned when the files are written)."""
    from curate.data.synthetic.captions import COLOUR_SYNONYMS, SHAPE_SYNONYMS, SIZE_SYNONYMS

    lex = {name: i for i, name in enumerate(LEXNAMES)}
    synsets = [
        {
            "id": "shape.n.01",
            "pos": "n",
            "lex": lex["noun.shape"],
            "lemmas": ["shape", "form"],
            "gloss": "the spatial arrangement of something",
        },
        {
            "id": "chromatic_color.n.01",
            "pos": "n",
            "lex": lex["noun.attribute"],
            "lemmas": ["chromatic_color", "colour"],
            "gloss": "a colour of the synthetic world",
        },
    ]
    for shape, forms in SHAPE_SYNONYMS.items():
        lemmas = [shape] + [s for s, _ in forms if " " not in s and s != shape]
        synsets.append(
            {
                "id": f"{shape}.n.01",
                "pos": "n",
                "lex": lex["noun.shape"],
                "lemmas": lemmas,
                "gloss": f"a {shape} of the synthetic world",
                "hypernym": "shape.n.01",
            }
        )
    for colour, words in COLOUR_SYNONYMS.items():
        lemmas = [w.replace(" ", "_") for w in words]
        synsets.append(
            {
                "id": f"{colour}.n.01",
                "pos": "n",
                "lex": lex["noun.attribute"],
                "lemmas": lemmas,
                "gloss": f"the colour {colour}",
                "hypernym": "chromatic_color.n.01",
            }
        )
    for size, words in SIZE_SYNONYMS.items():
        synsets.append(
            {"id": f"{size}.a.01", "pos": "a", "lex": lex["adj.all"], "lemmas": [size], "gloss": f"{size} in size"}
        )
        for word in words[1:]:
            synsets.append(
                {
                    "id": f"{word}.s.01",
                    "pos": "s",
                    "lex": lex["adj.all"],
                    "lemmas": [word],
                    "gloss": f"very {size}",
                    "similar": f"{size}.a.01",
                    "head": size,
                }
            )
    synsets.append(
        {"id": "move.v.01", "pos": "v", "lex": lex["verb.motion"], "lemmas": ["move"], "gloss": "change position"}
    )
    synsets.append(
        {"id": "left.r.01", "pos": "r", "lex": lex["adv.all"], "lemmas": ["left"], "gloss": "toward the left side"}
    )
    by_id = {s["id"]: s for s in synsets}
    for s in synsets:
        s["pointers"] = []
    for s in synsets:
        if "hypernym" in s:
            s["pointers"].append(("@", s["hypernym"]))
            by_id[s["hypernym"]]["pointers"].append(("~", s["id"]))
        if "similar" in s:
            s["pointers"].append(("&", s["similar"]))
            by_id[s["similar"]]["pointers"].append(("&", s["id"]))
    return synsets


def _header() -> str:
    return "".join(f"  {i + 1} {line}  \n" for i, line in enumerate(HEADER))


def _data_line(s: dict, offsets: dict) -> str:
    words = " ".join(f"{lemma} {i:x}" for i, lemma in enumerate(s["lemmas"]))
    pointers = " ".join(f"{sym} {offsets[t]:08d} {offsets_pos(t)} 0000" for sym, t in s["pointers"])
    frames = " 01 + 02 00" if s["pos"] == "v" else ""
    return (
        f"{offsets[s['id']]:08d} {s['lex']:02d} {s['pos']} {len(s['lemmas']):02x} {words} "
        f"{len(s['pointers']):03d}{' ' + pointers if pointers else ''}{frames} | {s['gloss']}  \n"
    )


def offsets_pos(synset_id: str) -> str:
    return synset_id.split(".")[-2]


def wordnet_files(synsets=None) -> tuple[dict[str, bytes], dict[str, int]]:
    """The files of ``wordnet/`` and each synset's offset."""
    synsets = synsets or wordnet_synsets()
    offsets = {s["id"]: 0 for s in synsets}
    files: dict[str, str] = {}
    # offsets are 8-digit fields: the lines' lengths do not depend on them, so one layout pass
    # with provisional offsets fixes every line's position
    for _ in range(2):
        for suffix in ("noun", "verb", "adj", "adv"):
            text = _header()
            for s in (s for s in synsets if FILE_OF[s["pos"]] == suffix):
                offsets[s["id"]] = len(text.encode())
                text += _data_line(s, offsets)
            files[f"data.{suffix}"] = text
    index: dict[tuple[str, str], list[str]] = {}
    senses = []
    for s in synsets:
        file_pos = "a" if s["pos"] == "s" else s["pos"]
        for lex_id, lemma in enumerate(s["lemmas"]):
            index.setdefault((lemma.lower(), file_pos), []).append(s["id"])
            head = f"{s['head']}:00" if s["pos"] == "s" else ":"  # a satellite names its head adjective
            key = f"{lemma.lower()}%{POS_NUMBER[s['pos']]}:{s['lex']:02d}:{lex_id:02d}:{head}"
            senses.append((key, s["id"]))
    for suffix, pos in (("noun", "n"), ("verb", "v"), ("adj", "a"), ("adv", "r")):
        lines = []
        for (lemma, p), ids in sorted(index.items()):
            if p != pos:
                continue
            symbols = sorted({sym for i in ids for sym, _ in next(x for x in synsets if x["id"] == i)["pointers"]})
            lines.append(
                f"{lemma} {pos} {len(ids)} {len(symbols)} {' '.join(symbols) + ' ' if symbols else ''}"
                f"{len(ids)} 0 {' '.join(f'{offsets[i]:08d}' for i in ids)}  \n"
            )
        files[f"index.{suffix}"] = _header() + "".join(lines)
    senses.sort()
    files["index.sense"] = "".join(f"{key} {offsets[i]:08d} 1 0\n" for key, i in senses)
    files["cntlist.rev"] = "".join(f"{key} 1 0\n" for key, _ in senses)
    file_pos = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}
    files["lexnames"] = "".join(f"{i:02d}\t{name}\t{file_pos[name.split('.')[0]]}\n" for i, name in enumerate(LEXNAMES))
    files["noun.exc"] = "rhombi rhombus\n"
    files["verb.exc"] = ""
    files["adj.exc"] = ""
    files["adv.exc"] = ""
    files["README"] = "\n".join(HEADER) + "\n"
    return {name: text.encode() for name, text in files.items()}, offsets


def build_wordnet_zip(path) -> dict[str, int]:
    """nltk_data's ``corpora/wordnet.zip`` at `path`; returns each synset's offset."""
    files, offsets = wordnet_files()
    write_zip(path, {"wordnet/": b"", **{f"wordnet/{name}": data for name, data in files.items()}})
    return offsets


def shape_wnids() -> list[str]:
    """The shape synsets' ids as ImageNet writes them (``n00000617``): the synthetic world's objects."""
    from curate.data.synthetic.captions import SHAPE_SYNONYMS

    _, offsets = wordnet_files()
    return sorted(f"n{offsets[f'{shape}.n.01']:08d}" for shape in SHAPE_SYNONYMS)


def build_wnid_list(path) -> Path:
    """DataComp's ``imagenet21k_wordnet_ids.txt`` at `path`: one WordNet id per line, here the
    shape synsets' (`shape_wnids`), the synthetic world's ImageNet-21k."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{wnid}\n" for wnid in shape_wnids()))
    return path
