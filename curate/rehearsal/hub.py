"""The rehearsal's Hugging Face repos as the Hub describes them: files, ids, commits.

A repo is a plain folder ``R/hub/{models,datasets}/<repo id>/`` holding its files at revision
``main``. What the Hub's API says about it is computed from the bytes: each file's git blob id
(``sha1("blob <size>\\0" + bytes)``), its sha256 and size; files the Hub keeps in LFS (by
extension, or 10 MiB and more) carry an ``lfs`` entry whose sha256 is their ETag, as on the Hub;
the commit id is the sha1 of the sorted ``path blob-id`` lines, so a rebuilt repo with the same
bytes has the same commit and a changed one a new commit (clients' caches then refetch).
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

#: the Hub's URL word of each repo type
KIND_FOLDERS = {"model": "models", "dataset": "datasets"}
REVISION = "main"
#: file names the Hub's default .gitattributes sends to LFS (the binary and archive formats)
LFS_SUFFIXES = (
    ".7z .arrow .bin .bz2 .ckpt .ftz .gz .h5 .joblib .mlmodel .model .msgpack .npy .npz .onnx .ot "
    ".parquet .pb .pickle .pkl .pt .pth .rar .safetensors .tar .tflite .tgz .wasm .xz .zip .zst"
).split()
LFS_MIN_BYTES = 10 * 1024 * 1024
_CHUNK = 1 << 20


def repo_dir(root, repo_type: str, repo_id: str) -> Path:
    """The folder of a repo under a built root."""
    if repo_type not in KIND_FOLDERS:
        raise ValueError(f"repo type {repo_type!r}: the rehearsal serves {sorted(KIND_FOLDERS)}")
    if not repo_id or repo_id.startswith("/") or ".." in repo_id.split("/"):
        raise ValueError(f"not a repo id: {repo_id!r}")
    return Path(root) / "hub" / KIND_FOLDERS[repo_type] / repo_id


@dataclass(frozen=True)
class FileEntry:
    path: str
    size: int
    blob_id: str
    sha256: str
    lfs: bool
    mtime_ns: int = field(default=0, compare=False)

    def tree_json(self) -> dict:
        """The entry as the Hub's tree and paths-info endpoints give it."""
        out = {"type": "file", "oid": self.blob_id, "size": self.size, "path": self.path}
        if self.lfs:
            # the pointer file git stores instead: "version ...\noid sha256:<hex>\nsize <n>\n"
            pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256}\nsize {self.size}\n"
            out["lfs"] = {"oid": self.sha256, "size": self.size, "pointerSize": len(pointer)}
        return out

    @property
    def etag(self) -> str:
        return self.sha256 if self.lfs else self.blob_id


@dataclass(frozen=True)
class RepoIndex:
    files: dict  # path -> FileEntry, sorted by path
    commit: str

    def folders(self) -> set[str]:
        out = set()
        for path in self.files:
            parts = path.split("/")[:-1]
            out.update("/".join(parts[: i + 1]) for i in range(len(parts)))
        return out

    def folder_json(self, path: str) -> dict:
        """A folder as the Hub lists it: its oid is the sha1 of what lies under it."""
        digest = hashlib.sha1()
        for p, entry in self.files.items():
            if p.startswith(path + "/"):
                digest.update(f"{p} {entry.blob_id}\n".encode())
        return {"type": "directory", "oid": digest.hexdigest(), "size": 0, "path": path}


def is_lfs(path: str, size: int) -> bool:
    return size >= LFS_MIN_BYTES or path.lower().endswith(tuple(LFS_SUFFIXES))


def file_entry(folder: Path, path: str) -> FileEntry:
    full = folder / path
    stat = full.stat()
    size = stat.st_size
    blob = hashlib.sha1(f"blob {size}\0".encode())
    sha = hashlib.sha256()
    with open(full, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            blob.update(chunk)
            sha.update(chunk)
    return FileEntry(path, size, blob.hexdigest(), sha.hexdigest(), is_lfs(path, size), stat.st_mtime_ns)


def repo_files(folder: Path) -> list[str]:
    """Relative paths of a repo's files, sorted; hidden files and folders (``.cache`` that a
    local download leaves) are not part of a repo, except ``.gitattributes``."""
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if name.startswith(".") and name != ".gitattributes":
                continue
            out.append((Path(dirpath) / name).relative_to(folder).as_posix())
    return sorted(out)


def index_repo(folder, previous: RepoIndex | None = None) -> RepoIndex:
    """Index a repo folder; entries of `previous` whose file kept its size and mtime are reused."""
    folder = Path(folder)
    files = {}
    for path in repo_files(folder):
        old = previous.files.get(path) if previous else None
        stat = (folder / path).stat()
        keep = old is not None and (old.size, old.mtime_ns) == (stat.st_size, stat.st_mtime_ns)
        files[path] = old if keep else file_entry(folder, path)
    commit = hashlib.sha1("".join(f"{p} {e.blob_id}\n" for p, e in files.items()).encode()).hexdigest()
    return RepoIndex(files, commit)


class RepoCache:
    """Indexes of the repos under a root, recomputed when a repo's files change (thread-safe)."""

    def __init__(self, root):
        self.root = Path(root)
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str], tuple[tuple, RepoIndex]] = {}

    def find(self, repo_type: str, segments: list[str]) -> tuple[str, list[str]] | None:
        """The repo id a URL's path segments start with (``org/name`` or ``name``) and the rest."""
        for n in (2, 1):
            if len(segments) >= n:
                repo_id = "/".join(segments[:n])
                try:
                    if repo_dir(self.root, repo_type, repo_id).is_dir():
                        return repo_id, segments[n:]
                except ValueError:
                    return None
        return None

    def index(self, repo_type: str, repo_id: str) -> RepoIndex:
        folder = repo_dir(self.root, repo_type, repo_id)
        signature = tuple((p, (folder / p).stat().st_size, (folder / p).stat().st_mtime_ns) for p in repo_files(folder))
        key = (repo_type, repo_id)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and cached[0] == signature:
                return cached[1]
            index = index_repo(folder, cached[1] if cached else None)
            self._cache[key] = (signature, index)
            return index
