"""Pretrained models as config entries: fetched once into a folder the loaders read offline.

A ``models`` entry of config.yaml names a library and where the weights come from; `fetch_model`
puts the model into one folder and writes ``fetch.json`` there (what was fetched, from where, the
sha256 of every file). Nothing else downloads: the score, caption and evaluation rules load the
folder.

- ``open_clip``: ``arch`` + ``pretrained`` (an open_clip tag such as ``openai`` or
  ``merged2b_s8b_b131k``, or a path to a weights file). The tag's weights come from where open_clip's
  registry says: OpenAI's from OpenAI's URL, downloaded here through ``url_mirrors`` (open_clip's own
  download would check the sha256 that OpenAI's URL paths hold, which the config's ``sha256`` of these
  entries is, and cache by file name: neither works through a mirror that serves other bytes); the
  others from the tag's Hub repo (``snapshot_download`` of its weights file, the safetensors one when
  the repo has it, and its ``open_clip_config.json``). They go through open_clip's checkpoint loader
  (strict) and are saved as an open_clip ``local-dir`` folder (``open_clip_config.json`` +
  ``open_clip_model.safetensors``, `curate.scoring.clip.export_local_dir`), the layout of the
  workflow's own tiny models: `curate.scoring.clip.load_model("local-dir:<folder>")` loads both the
  same way. The architecture comes with the weights where they carry one, as open_clip's own loaders
  take it: an OpenAI checkpoint (a TorchScript archive) is read off its tensors' shapes
  (`curate.scoring.clip.export_openai_checkpoint`), a Hub repo's ``open_clip_config.json`` is used as
  it is; otherwise (a plain weights file) it is ``arch``. ``fetch.json`` says which
  (``arch_source``) and whether it is ``arch``'s (``matches_arch``). The tag's preprocessing (mean,
  std, interpolation, resize mode) goes into the folder's config.
- ``huggingface``: ``id`` (a Hub repo, at ``revision``) fetched with
  ``huggingface_hub.snapshot_download`` into the folder, loaded with ``from_pretrained(folder)``
  (transformers, sentence-transformers). An ``id`` that is a local folder is copied instead
  (clusters without internet).
- ``url``: one file (the original BLIP / LAVIS weights, fastText's ``lid.176.bin``, ImageNet-21k's
  synset ids), downloaded into the folder (`fetched_file` finds it); with ``unpack: zip`` an
  archive, unpacked there too (nltk's ``wordnet.zip``).

``sha256``: the hash of the downloaded weights file (open_clip: OpenAI's ``.pt`` or the Hub file
used; url) or of ``weights_file`` in the snapshot (huggingface). When given it is checked before
anything is written and a mismatch raises; when null (no published hash), the hash found is
recorded in ``fetch.json`` so later fetches can be pinned to it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import urllib.request
from pathlib import Path

from curate.data.mirrors import mirrored

log = logging.getLogger(__name__)

LIBRARIES = ("open_clip", "huggingface", "url")
FETCH_RECORD = "fetch.json"
#: open_clip's file names in a Hub repo (open_clip.constants)
OPEN_CLIP_CONFIG = "open_clip_config.json"
OPEN_CLIP_WEIGHTS = "open_clip_pytorch_model.bin"
OPEN_CLIP_SAFE_WEIGHTS = "open_clip_model.safetensors"


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
        record = _fetch_open_clip(name, entry, out_dir, expected, cache_dir, mirrors, snapshot_download)
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


def _fetch_open_clip(name, entry, out_dir: Path, expected, cache_dir, mirrors=None, snapshot_download=None) -> dict:
    import open_clip

    from curate.scoring.clip import (
        CONFIG_NAME,
        arch_open_clip_config,
        export_local_dir,
        export_openai_checkpoint,
        export_with_config,
        is_torchscript,
        same_architecture,
    )

    arch, pretrained = entry["arch"], str(entry["pretrained"])
    tag_cfg = open_clip.get_pretrained_cfg(arch, pretrained)
    repo_config = None
    with tempfile.TemporaryDirectory(prefix=".download-", dir=out_dir.parent) as download_dir:
        if Path(pretrained).is_file():
            weights, origin = Path(pretrained), str(Path(pretrained).resolve())
        elif pretrained.startswith(("https://", "http://")):
            # a released weights file (FLYT's DFNs: open_clip checkpoints on the Hub), through url_mirrors
            origin = pretrained
            weights = _download(origin, Path(download_dir) / origin.rstrip("/").rsplit("/", 1)[-1], mirrors)
        elif tag_cfg and "openaipublic" in (tag_cfg.get("url") or ""):
            # OpenAI's file from OpenAI's URL (through url_mirrors), checked against the config's sha256
            # (the hash in the URL's path); open_clip's own download would check the path's hash, which
            # no mirror serving other bytes could pass, and cache by file name
            origin = tag_cfg["url"]
            weights = _download(origin, Path(download_dir) / origin.rsplit("/", 1)[-1], mirrors)
        elif tag_cfg and tag_cfg.get("hf_hub"):
            origin = f"hf://{tag_cfg['hf_hub'].rstrip('/')}"
            weights, repo_config = _hub_open_clip_files(
                tag_cfg["hf_hub"], Path(download_dir), cache_dir, snapshot_download
            )
        elif tag_cfg and tag_cfg.get("url"):
            origin = tag_cfg["url"]
            weights = _download(origin, Path(download_dir) / origin.rstrip("/").rsplit("/", 1)[-1], mirrors)
        else:
            known = open_clip.list_pretrained_tags_by_model(arch)
            raise ValueError(f"models.{name}: open_clip knows no weights {pretrained!r} for {arch!r} (tags: {known})")
        sha = check_sha256(weights, expected, f"models.{name}")
        # the architecture comes with the weights where they carry one (OpenAI's checkpoints, a Hub
        # repo's open_clip_config.json), as open_clip's own loaders take it; else it is `arch` (strict)
        if is_torchscript(weights) or "openaipublic" in origin:
            model_cfg, arch_source = export_openai_checkpoint(weights, out_dir), "checkpoint"
        elif repo_config is not None:
            export_with_config(weights, repo_config, out_dir)
            model_cfg, arch_source = repo_config["model_cfg"], "repo"
        elif not tag_cfg and pretrained.startswith(("https://", "http://")):
            model_cfg, arch_source = _export_released_checkpoint(weights, arch, out_dir), "checkpoint"
        else:
            export_local_dir(weights, arch, out_dir)
            model_cfg, arch_source = None, "arch"
    matches = None if model_cfg is None else same_architecture(model_cfg, arch_open_clip_config(arch)["model_cfg"])
    if matches is False:
        log.warning("models.%s: the weights' architecture (%s) is not %s: %s", name, arch_source, arch, model_cfg)
    if tag_cfg:
        config_path = out_dir / CONFIG_NAME
        config = json.loads(config_path.read_text())
        for key in ("mean", "std", "interpolation", "resize_mode"):
            if key in tag_cfg:
                config["preprocess_cfg"][key] = list(tag_cfg[key]) if isinstance(tag_cfg[key], tuple) else tag_cfg[key]
        config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return {
        "arch": arch,
        "pretrained": pretrained,
        "origin": origin,
        "sha256": sha,
        "arch_source": arch_source,
        "matches_arch": matches,
    }


def _export_released_checkpoint(weights: Path, arch: str, out_dir: Path) -> dict:
    """A released open_clip checkpoint (a training checkpoint's ``state_dict`` or a bare state dict)
    into a model folder. It names no architecture: its tower sizes are read off its tensors, as
    for OpenAI's checkpoints, with ``arch``'s activation (open_clip checkpoints carry none); where
    they are ``arch``'s the weights go into ``arch`` itself (strict). Returns the model config."""
    from curate.scoring.clip import arch_open_clip_config, export_with_config, openai_model_cfg, openai_state_dict
    from curate.scoring.clip import same_architecture as same

    named = arch_open_clip_config(arch)
    state = openai_state_dict(weights)
    found = {k: v for k, v in openai_model_cfg(state).items() if k != "quick_gelu"}
    if named["model_cfg"].get("quick_gelu"):
        found["quick_gelu"] = True
    if same(found, named["model_cfg"]):
        export_with_config(weights, named, out_dir)
    else:
        export_with_config(weights, {"model_cfg": found, "preprocess_cfg": named["preprocess_cfg"]}, out_dir)
    return found


def _safe_alternative(filename: str) -> str | None:
    """The safetensors file open_clip prefers to `filename` in a Hub repo (its ``_get_safe_alternatives``)."""
    if filename == OPEN_CLIP_WEIGHTS:
        return OPEN_CLIP_SAFE_WEIGHTS
    if filename.endswith((".bin", ".pth")):
        return filename[:-4] + ".safetensors"
    return None


def _hub_open_clip_files(hf_hub: str, local_dir: Path, cache_dir, snapshot_download=None):
    """An open_clip tag's weights from its Hub repo (``org/name/`` or ``org/name/file``): the file
    open_clip would pick (its safetensors alternative when the repo has one) and the repo's
    ``open_clip_config.json`` (None if absent), fetched with one ``snapshot_download``."""
    if snapshot_download is None:
        from huggingface_hub import snapshot_download
    repo_id, filename = hf_hub.rstrip("/"), OPEN_CLIP_WEIGHTS
    if not hf_hub.endswith("/"):
        repo_id, filename = hf_hub.rsplit("/", 1)
    safe = _safe_alternative(filename)
    patterns = [OPEN_CLIP_CONFIG, filename] + ([safe] if safe else [])
    snapshot_download(
        repo_id=repo_id,
        revision=None,
        local_dir=str(local_dir),
        cache_dir=None if cache_dir is None else str(cache_dir),
        allow_patterns=patterns,
    )
    found = [local_dir / f for f in ([safe] if safe else []) + [filename] if (local_dir / f).is_file()]
    if not found:
        raise FileNotFoundError(f"hf://{repo_id}: none of {patterns[1:]}")
    config_path = local_dir / OPEN_CLIP_CONFIG
    config = json.loads(config_path.read_text()) if config_path.is_file() else None
    if config is not None and "model_cfg" not in config:
        raise ValueError(f"hf://{repo_id}/{OPEN_CLIP_CONFIG}: no 'model_cfg'")
    return found[0], config


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


def _download(url: str, target: Path, mirrors=None, expected=None, what=None) -> Path:
    """Download `url` (through `mirrors`) to `target`, via a ``.part`` file removed on failure; with
    `expected` the sha256 is checked before the file gets its name."""
    tmp = target.with_name(target.name + ".part")
    try:
        with urllib.request.urlopen(mirrored(url, mirrors), timeout=60) as response, open(tmp, "wb") as f:
            shutil.copyfileobj(response, f, length=1 << 20)
        if expected is not None:
            check_sha256(tmp, expected, what or url)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, target)
    return target


def _fetch_url(name, entry, out_dir: Path, expected, mirrors=None) -> dict:
    url = str(entry["url"])
    # the file is named after the URL's last path segment, without a query (Drive's ``download?id=``)
    target = _download(
        url, out_dir / url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1], mirrors, expected, f"models.{name}"
    )
    record = {"url": url, "origin": url, "file": target.name, "sha256": file_sha256(target)}
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
