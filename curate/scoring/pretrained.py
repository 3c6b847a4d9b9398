"""Pretrained models as config entries: fetched once into a folder the loaders read offline.

A ``models`` entry of config.yaml names a library and where the weights come from; `fetch_model`
puts the model into one folder and writes ``fetch.json`` there (what was fetched, from where, the
sha256 of every file). Nothing else downloads: the score, caption and evaluation rules load the
folder.

- ``open_clip``: ``arch`` + ``pretrained`` (an open_clip tag such as ``openai`` or
  ``merged2b_s8b_b131k``, or a path to a weights file). open_clip downloads the tag's weights
  (OpenAI's from OpenAI's URLs, whose path holds the file's sha256, which open_clip checks; the
  others from the Hub); they go through open_clip's checkpoint loader into ``arch`` (strict) and
  are saved as an open_clip ``local-dir`` folder (``open_clip_config.json`` +
  ``open_clip_model.safetensors``, `curate.scoring.clip.export_local_dir`), the layout of the workflow's
  own tiny models: `curate.scoring.clip.load_model("local-dir:<folder>")` loads both the same way. The
  tag's preprocessing (mean, std, interpolation, resize mode) goes into the folder's config.
- ``huggingface``: ``id`` (a Hub repo, at ``revision``) fetched with
  ``huggingface_hub.snapshot_download`` into the folder, loaded with ``from_pretrained(folder)``
  (transformers, sentence-transformers). An ``id`` that is a local folder is copied instead
  (clusters without internet).
- ``url``: one file (the original BLIP / LAVIS weights, fastText's ``lid.176.bin``, ImageNet-21k's
  synset ids), downloaded into the folder (`fetched_file` finds it); with ``unpack: zip`` an
  archive, unpacked there too (nltk's ``wordnet.zip``).

``sha256``: the hash of the downloaded weights file (open_clip, url) or of ``weights_file`` in the
snapshot (huggingface). When given it is checked before anything is written and a mismatch raises;
when null (no published hash), the hash found is recorded in ``fetch.json`` so later fetches can
be pinned to it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import urllib.request
from pathlib import Path

from curate.data.mirrors import mirrored

log = logging.getLogger(__name__)

LIBRARIES = ("open_clip", "huggingface", "url")
FETCH_RECORD = "fetch.json"


def file_sha256(path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()


def check_sha256(path, expected: str | None, what: str) -> str:
    """The file's sha256; raises ValueError naming `what` when `expected` is given and differs."""
    found = file_sha256(path)
    if expected is not None and found != expected.lower():
        raise ValueError(f"{what}: sha256 of {path} is {found}, the config says {expected}")
    return found


def fetch_model(name: str, entry: dict, out_dir, cache_dir=None, snapshot_download=None, mirrors=None) -> dict:
    """Fetch the model `name` (its config entry `entry`) into the folder `out_dir`; returns the
    record also written to ``out_dir/fetch.json``. `cache_dir`: where downloads are kept between
    attempts (open_clip's and huggingface_hub's caches). `snapshot_download` defaults to
    huggingface_hub's (tests pass their own). `mirrors`: the config's ``url_mirrors``, applied to
    every plain URL (`curate.data.mirrors`); Hub downloads follow ``HF_ENDPOINT``."""
    library = entry.get("library")
    if library not in LIBRARIES:
        raise ValueError(f"models.{name}: unknown library {library!r}; expected one of {LIBRARIES}")
    out_dir = Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    expected = entry.get("sha256")
    if library == "open_clip":
        record = _fetch_open_clip(name, entry, out_dir, expected, cache_dir, mirrors)
    elif library == "huggingface":
        record = _fetch_huggingface(name, entry, out_dir, expected, cache_dir, snapshot_download)
    else:
        record = _fetch_url(name, entry, out_dir, expected, mirrors)
    record = {
        "name": name,
        "library": library,
        "sha256_expected": expected,
        **record,
        "files": {
            p.relative_to(out_dir).as_posix(): file_sha256(p)
            for p in sorted(out_dir.rglob("*"))
            if p.is_file() and ".cache" not in p.parts
        },
    }
    tmp = out_dir / (FETCH_RECORD + ".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, out_dir / FETCH_RECORD)
    return record


def _fetch_open_clip(name, entry, out_dir: Path, expected, cache_dir, mirrors=None) -> dict:
    import open_clip

    from curate.scoring.clip import CONFIG_NAME, export_local_dir

    arch, pretrained = entry["arch"], str(entry["pretrained"])
    tag_cfg = open_clip.get_pretrained_cfg(arch, pretrained)
    if Path(pretrained).is_file():
        weights, origin = Path(pretrained), str(Path(pretrained).resolve())
    elif tag_cfg:
        # OpenAI's weights from OpenAI's URL (open_clip checks the sha256 in its path); others from the Hub
        from_url = "openaipublic" in (tag_cfg.get("url") or "")
        fetched_cfg = dict(tag_cfg, url=mirrored(tag_cfg["url"], mirrors)) if tag_cfg.get("url") else tag_cfg
        weights = Path(
            open_clip.download_pretrained(
                fetched_cfg, prefer_hf_hub=not from_url, cache_dir=None if cache_dir is None else str(cache_dir)
            )
        )
        origin = tag_cfg["url"] if from_url else tag_cfg.get("hf_hub") or tag_cfg.get("url")
    else:
        known = open_clip.list_pretrained_tags_by_model(arch)
        raise ValueError(f"models.{name}: open_clip knows no weights {pretrained!r} for {arch!r} (tags: {known})")
    sha = check_sha256(weights, expected, f"models.{name}")
    export_local_dir(weights, arch, out_dir)
    if tag_cfg:
        config_path = out_dir / CONFIG_NAME
        config = json.loads(config_path.read_text())
        for key in ("mean", "std", "interpolation", "resize_mode"):
            if key in tag_cfg:
                config["preprocess_cfg"][key] = list(tag_cfg[key]) if isinstance(tag_cfg[key], tuple) else tag_cfg[key]
        config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return {"arch": arch, "pretrained": pretrained, "origin": origin, "sha256": sha}


def _fetch_huggingface(name, entry, out_dir: Path, expected, cache_dir, snapshot_download) -> dict:
    repo, revision = str(entry["id"]), entry.get("revision")
    if Path(repo).is_dir():
        shutil.copytree(repo, out_dir, dirs_exist_ok=True)
        origin, resolved = str(Path(repo).resolve()), None
    else:
        if snapshot_download is None:
            from huggingface_hub import snapshot_download
        resolved = snapshot_download(
            repo_id=repo,
            revision=revision,
            local_dir=str(out_dir),
            cache_dir=None if cache_dir is None else str(cache_dir),
        )
        origin = f"hf://{repo}@{revision or 'main'}"
        shutil.rmtree(out_dir / ".cache", ignore_errors=True)
    sha = None
    weights_file = entry.get("weights_file")
    if weights_file is not None:
        path = out_dir / weights_file
        if not path.is_file():
            raise FileNotFoundError(f"models.{name}: {repo} has no weights file {weights_file!r}")
        sha = check_sha256(path, expected, f"models.{name}")
    elif expected is not None:
        raise ValueError(f"models.{name}: sha256 given without weights_file (which file it is the hash of)")
    return {
        "id": repo,
        "revision": revision,
        "origin": origin,
        "snapshot": str(resolved) if resolved else None,
        "weights_file": weights_file,
        "sha256": sha,
    }


def _fetch_url(name, entry, out_dir: Path, expected, mirrors=None) -> dict:
    url = str(entry["url"])
    target = out_dir / url.rstrip("/").rsplit("/", 1)[-1]
    tmp = target.with_name(target.name + ".part")
    with urllib.request.urlopen(mirrored(url, mirrors), timeout=60) as response, open(tmp, "wb") as f:
        shutil.copyfileobj(response, f, length=1 << 20)
    try:
        sha = check_sha256(tmp, expected, f"models.{name}")
    except ValueError:
        tmp.unlink()
        raise
    os.replace(tmp, target)
    record = {"url": url, "origin": url, "file": target.name, "sha256": sha}
    if entry.get("unpack") == "zip":
        record["unpacked"] = unpack_zip(target, out_dir)
    return record


def unpack_zip(archive, out_dir) -> list[str]:
    """Unpack a zip archive into ``out_dir``; returns its top-level names. A member that would land
    outside ``out_dir`` (an absolute path, ``..``) raises before anything is written."""
    import zipfile

    out_dir = Path(out_dir).resolve()
    with zipfile.ZipFile(archive) as zf:
        names = zf.namelist()
        for name in names:
            if not (out_dir / name).resolve().is_relative_to(out_dir):
                raise ValueError(f"{archive}: member {name!r} would be unpacked outside {out_dir}")
        zf.extractall(out_dir)
    return sorted({name.split("/", 1)[0] for name in names})


def fetched_file(folder) -> Path:
    """The file ``fetch_model`` downloaded into ``folder`` for a ``library: url`` model (its
    ``fetch.json`` names it)."""
    folder = Path(folder)
    record = folder / FETCH_RECORD
    if not record.is_file():
        raise FileNotFoundError(f"{folder}: no {FETCH_RECORD} (not a folder fetch_model wrote)")
    name = json.loads(record.read_text()).get("file")
    if not name:
        raise ValueError(f"{record}: names no downloaded file (not a `library: url` model)")
    return folder / name


def model_source(folder) -> str:
    """The loader argument of a fetched open_clip model folder (`curate.scoring.clip.load_model`)."""
    return f"local-dir:{Path(folder)}"
