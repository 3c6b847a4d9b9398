"""The rehearsal's loopback server: a built root (`curate.rehearsal`) over HTTP on 127.0.0.1.

Routes, enough for the workflow's unchanged clients (huggingface_hub's ``snapshot_download`` and
``hf_hub_download``, open_clip's hub downloads, ``datasets.load_dataset`` of a parquet repo,
img2dataset, plain URL fetches):

- ``GET /api/{models,datasets}/<repo>[/revision/<rev>]``: the repo's info (``sha`` = its commit,
  ``siblings``; sizes and LFS data with ``?blobs=true``);
- ``GET /api/{models,datasets}/<repo>/tree/<rev>[/<path>]?recursive=``: the tree listing, 1000
  entries a page, the next page in a ``Link: <...>; rel="next"`` header;
- ``POST /api/{models,datasets}/<repo>/paths-info/<rev>`` (form ``paths=...``): those entries;
- ``GET|HEAD /<repo>/resolve/<rev>/<path>`` and ``/datasets/<repo>/resolve/<rev>/<path>`` (and
  ``/raw/``): the file, with ``X-Repo-Commit``, ``ETag`` (the git blob id, or for LFS files the
  sha256, also as ``X-Linked-Etag``/``X-Linked-Size``), ``Content-Length`` and byte ranges. No
  Xet headers, so clients download over plain HTTP;
- ``GET|HEAD /web/<host>/<path>[?<query>]``: ``R/web/<host>/<path>[/?<query>]`` (plain URLs, through ``url_mirrors``);
- ``GET|HEAD /img/<path>``: pool images; a URL listed in ``R/faults.json`` as ``timeout`` answers
  only after ``stall_s`` seconds (just past img2dataset's timeout), a missing file is a 404;
- ``GET /``: what is served (a JSON summary; ``up`` polls it).

Revisions are ``main`` or the repo's commit id; anything else is the Hub's RevisionNotFound.
Errors carry the Hub's ``X-Error-Code`` (RepoNotFound, RevisionNotFound, EntryNotFound).

Bounds: the server binds 127.0.0.1 only; at most ``max_threads`` requests are handled at once
(the accept loop waits for a free slot); a connection serves at most ``MAX_REQUESTS_PER_CONNECTION``
requests and is closed after ``SOCKET_TIMEOUT_S`` idle; a stall lasts at most ``MAX_STALL_S``; a
request body is at most ``MAX_BODY_BYTES``; a tree page holds at most ``PAGE_SIZE`` entries.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import os
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

from curate.rehearsal.hub import REVISION, RepoCache

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
#: img2dataset's own default timeout is 10 s: a stalled image answers a second after it
DEFAULT_STALL_S = 11.0
MAX_STALL_S = 60.0
SOCKET_TIMEOUT_S = 30.0
MAX_REQUESTS_PER_CONNECTION = 1000
MAX_BODY_BYTES = 1 << 20
PAGE_SIZE = 1000
MAX_THREADS = 256
FAULTS_FILE = "faults.json"
#: the Hub's timestamps: fixed, so every answer about the same bytes is the same
LAST_MODIFIED = "2024-01-01T00:00:00.000Z"
_CHUNK = 1 << 16
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class HubError(Exception):
    def __init__(self, status: int, code: str | None, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class Faults:
    """``R/faults.json``'s image URLs by path (the host and port do not matter), reread when
    the file changes."""

    def __init__(self, root: Path, stall_s: float | None):
        self.path = root / FAULTS_FILE
        self.stall_override = stall_s
        self._lock = threading.Lock()
        self._stamp = None
        self._by_path: dict[str, str] = {}
        self._stall = DEFAULT_STALL_S

    def lookup(self, path: str) -> tuple[str | None, float]:
        with self._lock:
            try:
                stamp = self.path.stat().st_mtime_ns
            except FileNotFoundError:
                stamp = None
            if stamp != self._stamp:
                data = json.loads(self.path.read_text()) if stamp is not None else {}
                self._by_path = {urlsplit(url).path: kind for url, kind in data.get("faults", {}).items()}
                self._stall = float(data.get("stall_s", DEFAULT_STALL_S))
                self._stamp = stamp
            stall = self._stall if self.stall_override is None else self.stall_override
            return self._by_path.get(path), min(max(stall, 0.0), MAX_STALL_S)


class RehearsalServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, root, port: int, stall_s: float | None = None, quiet: bool = False, max_threads=MAX_THREADS):
        self.root = Path(root).resolve()
        self.repos = RepoCache(self.root)
        self.faults = Faults(self.root, stall_s)
        self.quiet = quiet
        self._slots = threading.BoundedSemaphore(max_threads)
        super().__init__((HOST, int(port)), Handler)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server_address[1]}"

    def process_request(self, request, client_address):
        self._slots.acquire()
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class Handler(BaseHTTPRequestHandler):
    server: RehearsalServer
    protocol_version = "HTTP/1.1"
    server_version = "curate-rehearsal"
    timeout = SOCKET_TIMEOUT_S

    def handle(self):
        self.close_connection = True
        self.handle_one_request()
        served = 1
        while not self.close_connection and served < MAX_REQUESTS_PER_CONNECTION:
            self.handle_one_request()
            served += 1

    def log_message(self, format, *args):
        if not self.server.quiet:
            super().log_message(format, *args)

    def do_GET(self):
        self._dispatch(head=False)

    def do_HEAD(self):
        self._dispatch(head=True)

    def do_POST(self):
        self._dispatch(head=False, post=True)

    # -- routing -------------------------------------------------------------------------------

    def _dispatch(self, head: bool, post: bool = False):
        split = urlsplit(self.path)
        segments = [unquote(s) for s in split.path.split("/") if s]
        query = parse_qs(split.query)
        try:
            if post:
                body = self._read_body()
                if len(segments) >= 2 and segments[0] == "api" and segments[1] in ("models", "datasets"):
                    return self._api(segments[1][:-1], segments[2:], query, head, form=parse_qs(body.decode()))
                raise HubError(404, None, f"no POST route {split.path}")
            if not segments:
                return self._send_json(self._summary(), head)
            first = segments[0]
            if first == "api" and len(segments) >= 2 and segments[1] in ("models", "datasets"):
                return self._api(segments[1][:-1], segments[2:], query, head)
            if first == "web":
                query_file = [f"?{split.query}"] if split.query else []  # one file per query (`web_path`)
                return self._send_file(self._under(self.server.root / "web", segments[1:] + query_file), head)
            if first == "img":
                return self._image(split.path, segments[1:], head)
            if first == "datasets":
                return self._resolve("dataset", segments[1:], head)
            return self._resolve("model", segments, head)
        except HubError as err:
            self._send_error(err, head)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as err:  # noqa: BLE001 - answered, logged, and the server keeps serving
            log.exception("%s %s failed", self.command, self.path)
            self.close_connection = True
            self._send_error(HubError(500, None, f"{type(err).__name__}: {err}"), head)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            raise HubError(413, None, f"request body of {length} bytes (at most {MAX_BODY_BYTES})")
        return self.rfile.read(length) if length else b""

    def _repo(self, repo_type: str, segments: list[str]):
        found = self.server.repos.find(repo_type, segments)
        if found is None:
            raise HubError(404, "RepoNotFound", f"{repo_type} repository {'/'.join(segments[:2])!r} not found")
        repo_id, rest = found
        return repo_id, rest, self.server.repos.index(repo_type, repo_id)

    @staticmethod
    def _check_revision(index, revision: str):
        if revision not in (REVISION, index.commit):
            raise HubError(404, "RevisionNotFound", f"revision {revision!r} not found")

    def _api(self, repo_type: str, segments: list[str], query: dict, head: bool, form: dict | None = None):
        repo_id, rest, index = self._repo(repo_type, segments)
        if form is not None:
            if len(rest) != 2 or rest[0] != "paths-info":
                raise HubError(404, None, f"no POST route for {repo_id}: {'/'.join(rest)}")
            self._check_revision(index, rest[1])
            folders = index.folders()
            entries = []
            for path in form.get("paths", []):
                path = path.strip("/")
                if path in index.files:
                    entries.append(index.files[path].tree_json())
                elif path in folders:
                    entries.append(index.folder_json(path))
            return self._send_json(entries, head)
        if not rest or (len(rest) == 2 and rest[0] == "revision"):
            if rest:
                self._check_revision(index, rest[1])
            return self._send_json(self._info(repo_type, repo_id, index, _flag(query, "blobs")), head)
        if len(rest) >= 2 and rest[0] == "tree":
            self._check_revision(index, rest[1])
            return self._tree(repo_type, repo_id, index, "/".join(rest[2:]).strip("/"), query, head)
        if rest == ["refs"]:
            branch = {"name": REVISION, "ref": f"refs/heads/{REVISION}", "targetCommit": index.commit}
            return self._send_json({"branches": [branch], "tags": [], "converts": []}, head)
        raise HubError(404, None, f"no API route for {repo_id}: {'/'.join(rest)}")

    # -- answers -------------------------------------------------------------------------------

    def _summary(self) -> dict:
        root = self.server.root
        repos = {}
        for kind in ("models", "datasets"):
            base = root / "hub" / kind
            orgs = sorted(p for p in base.iterdir() if p.is_dir()) if base.is_dir() else []
            repos[kind] = [f"{org.name}/{repo.name}" for org in orgs for repo in sorted(org.iterdir()) if repo.is_dir()]
        built = root / "built.json"
        return {
            "root": str(root),
            "hub": f"{self.server.url}",
            "repos": repos,
            "built": json.loads(built.read_text()) if built.is_file() else None,
        }

    @staticmethod
    def _info(repo_type: str, repo_id: str, index, blobs: bool) -> dict:
        siblings = []
        for entry in index.files.values():
            sibling = {"rfilename": entry.path}
            if blobs:
                sibling.update(size=entry.size, blobId=entry.blob_id)
                if entry.lfs:
                    sibling["lfs"] = entry.tree_json()["lfs"]
            siblings.append(sibling)
        info = {
            "_id": index.commit[:24],
            "id": repo_id,
            "author": repo_id.split("/")[0] if "/" in repo_id else None,
            "sha": index.commit,
            "createdAt": LAST_MODIFIED,
            "lastModified": LAST_MODIFIED,
            "private": False,
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": siblings,
            "usedStorage": sum(e.size for e in index.files.values()),
        }
        if repo_type == "model":
            info["modelId"] = repo_id
        return info

    def _tree(self, repo_type: str, repo_id: str, index, path: str, query: dict, head: bool):
        recursive = _flag(query, "recursive")
        folders = index.folders()
        if path and path not in folders:
            raise HubError(404, "EntryNotFound", f"{path!r} is not a folder of {repo_id}")
        prefix = f"{path}/" if path else ""
        entries = []
        for folder in sorted(folders):
            rel = folder[len(prefix) :] if folder.startswith(prefix) else None
            if rel and (recursive or "/" not in rel):
                entries.append(index.folder_json(folder))
        for file_path, entry in index.files.items():
            rel = file_path[len(prefix) :] if file_path.startswith(prefix) else None
            if rel and (recursive or "/" not in rel):
                entries.append(entry.tree_json())
        entries.sort(key=lambda e: e["path"])
        start = int((query.get("cursor") or ["0"])[0] or 0)
        page = entries[start : start + PAGE_SIZE]
        headers = {}
        if start + PAGE_SIZE < len(entries):
            kind = "models" if repo_type == "model" else "datasets"
            rev = quote(index.commit, safe="")
            tail = "/" + quote(path, safe="/") if path else ""
            nxt = f"{self.server.url}/api/{kind}/{repo_id}/tree/{rev}{tail}?recursive={recursive}&cursor={start + PAGE_SIZE}"
            headers["Link"] = f'<{nxt}>; rel="next"'
        return self._send_json(page, head, headers)

    def _resolve(self, repo_type: str, segments: list[str], head: bool):
        repo_id, rest, index = self._repo(repo_type, segments)
        if len(rest) < 3 or rest[0] not in ("resolve", "raw"):
            raise HubError(404, None, f"no route for {repo_id}: {'/'.join(rest)}")
        self._check_revision(index, rest[1])
        path = "/".join(rest[2:])
        entry = index.files.get(path)
        if entry is None:
            raise HubError(404, "EntryNotFound", f"{path!r} not found in {repo_id}")
        headers = {"X-Repo-Commit": index.commit, "ETag": f'"{entry.etag}"'}
        if entry.lfs:
            headers.update({"X-Linked-Etag": f'"{entry.sha256}"', "X-Linked-Size": str(entry.size)})
        kind = "models" if repo_type == "model" else "datasets"
        return self._send_file(self.server.root / "hub" / kind / repo_id / path, head, headers)

    def _image(self, url_path: str, segments: list[str], head: bool):
        kind, stall = self.server.faults.lookup(url_path)
        if kind == "404":
            raise HubError(404, None, "image not found")
        if kind == "timeout":
            time.sleep(stall)
        return self._send_file(self._under(self.server.root / "img", segments), head)

    @staticmethod
    def _under(base: Path, segments: list[str]) -> Path:
        if not segments or any(s in ("", ".", "..") or "/" in s for s in segments):
            raise HubError(404, None, "not found")
        return base.joinpath(*segments)

    # -- sending -------------------------------------------------------------------------------

    def _send_json(self, obj, head: bool, headers: dict | None = None):
        body = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _send_error(self, err: HubError, head: bool):
        body = json.dumps({"error": err.message}).encode()
        self.send_response(err.status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        if err.code:
            self.send_header("X-Error-Code", err.code)
        self.send_header("X-Error-Message", err.message)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _send_file(self, path: Path, head: bool, headers: dict | None = None):
        if not path.is_file():
            raise HubError(404, "EntryNotFound" if headers else None, "not found")
        size = path.stat().st_size
        start, end, status = 0, size - 1, 200
        wanted = self.headers.get("Range")
        if wanted and size:
            m = _RANGE.match(wanted.strip())
            if m and (m.group(1) or m.group(2)):
                if m.group(1):
                    start = int(m.group(1))
                    end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
                else:
                    start = max(size - int(m.group(2)), 0)
                if start > end or start >= size:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = 206
        length = end - start + 1 if size else 0
        self.send_response(status)
        self.send_header("Content-Type", mimetypes.guess_type(path.name)[0] or "application/octet-stream")
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if head or not length:
            return
        with open(path, "rb") as fh:
            fh.seek(start)
            left = length
            while left > 0:
                chunk = fh.read(min(_CHUNK, left))
                if not chunk:
                    break
                self.wfile.write(chunk)
                left -= len(chunk)


def _flag(query: dict, name: str) -> bool:
    return (query.get(name) or ["false"])[0].lower() in ("1", "true", "yes")


def make_server(root, port: int, stall_s: float | None = None, quiet: bool = False) -> RehearsalServer:
    """A server of `root` bound to 127.0.0.1:`port` (0: a free port; see ``.url``), not yet
    serving: call ``serve_forever()`` (in a thread, for tests) and ``shutdown()``."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no built root at {root}")
    return RehearsalServer(root, port, stall_s=stall_s, quiet=quiet)


def serve(root, port: int, stall_s: float | None = None) -> None:
    """Serve `root` on 127.0.0.1:`port` in the foreground until interrupted or terminated."""
    import signal

    server = make_server(root, port, stall_s)

    def stop(signum, frame):
        # shutdown() waits for serve_forever, which runs in this thread: stop from another one
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    log.info("serving %s at %s (pid %d)", server.root, server.url, os.getpid())
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
