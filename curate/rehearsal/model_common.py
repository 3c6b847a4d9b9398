"""What the rehearsal's model builders share: where a source's files go in the local internet, the
synthetic world's captions the tiny tokenizers and language models are fitted to, seeding, and
byte-stable writers (the same seed gives the same bytes, so a rebuilt file keeps its sha256).
"""

from __future__ import annotations

import contextlib
import json
import os
import zipfile
from pathlib import Path

#: the earliest time a zip entry can hold (zip members carry no build time)
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
#: seed stream of the rehearsal's models (`curate.data.synthetic.world.rng_for`), none of the world's
STREAM_MODELS = 0x524D  # "RM"


def web_path(root, url: str) -> Path:
    """Where the plain URL ``https://<host>/<path>`` lives in the local internet: ``R/web/<host>/<path>``;
    a URL with a query (Google Drive's ``download?id=...``) at ``R/web/<host>/<path>/?<query>``, one
    file per query (the server maps it back)."""
    scheme, sep, rest = url.partition("://")
    rest, question, query = rest.partition("?")
    if not sep or scheme not in ("http", "https") or "/" not in rest or "/" in query:
        raise ValueError(f"not an http(s) URL of a file: {url!r}")
    return Path(root) / "web" / rest / f"?{query}" if question else Path(root) / "web" / rest


def hub_path(root, repo_id: str) -> Path:
    """Where the Hub model repo ``org/name`` lives in the local internet: ``R/hub/models/org/name``."""
    if repo_id.count("/") != 1:
        raise ValueError(f"not a Hub repo id (org/name): {repo_id!r}")
    return Path(root) / "hub" / "models" / repo_id


@contextlib.contextmanager
def seeded(seed: int):
    """torch's CPU generator seeded with `seed` inside, restored after."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        yield


def model_seed(name: str, seed: int) -> int:
    """A model's own seed: a function of the build seed and the model's source name only."""
    import zlib

    return (int(seed) * 1_000_003 + zlib.crc32(name.encode())) % (2**31 - 1)


def english_captions(seed: int, n: int = 600) -> list[str]:
    """``n`` English captions of the synthetic world (paraphrases of random scenes), seeded."""
    from curate.data.synthetic.captions import paraphrase
    from curate.data.synthetic.world import random_scene, rng_for

    rng = rng_for(seed, STREAM_MODELS)
    return [paraphrase(random_scene(rng), rng) for _ in range(int(n))]


def write_json(path, obj) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def write_model_card(folder, title: str, text: str) -> None:
    """The repo's ``README.md``: what the tiny model stands in for and how it was made."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "README.md").write_text(
        f"# {title}\n\n{text.strip()}\n\nTiny weights built by `curate.rehearsal.models` for the rehearsal's "
        "local internet: the source's file layout and formats, not its weights.\n"
    )


def write_zip(path, members: dict[str, bytes]) -> None:
    """A deflated zip of ``{name: bytes}`` in name order with fixed member times."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(members):
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.external_attr = (0o40755 if name.endswith("/") else 0o644) << 16
            info.compress_type = zipfile.ZIP_STORED if name.endswith("/") else zipfile.ZIP_DEFLATED
            zf.writestr(info, members[name])
    os.replace(tmp, path)
