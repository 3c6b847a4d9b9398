"""``python -m curate.rehearsal build|serve|up|down``: build the local internet, serve it.

- ``build --root R [--port 8765] [--rows N] [--jobs J] [--pools a,b] [--models x,y]``: runs
  ``build`` of `PARTS` in order (pools, evaluation sets, datasets, models), each only when what it was
  built from changed: its inputs (port, rows, the pools or models it was limited to) or its code (the part's module and the synthetic world it draws from). What was
  built, and from what, is recorded in ``R/built.json``. The same command gives the same bytes.
- ``serve --root R --port P``: serves R on 127.0.0.1:P in the foreground (`curate.rehearsal.server`).
- ``up --root R --port P``: builds what is out of date, starts ``serve`` in the background
  (pid in ``R/server.pid``, its log in ``R/server.log``) and waits until it answers.
- ``down --root R``: stops that server by its pid.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

log = logging.getLogger("curate.rehearsal")

DEFAULT_PORT = 8765
BUILT = "built.json"
PID_FILE = "server.pid"
LOG_FILE = "server.log"
#: the parts of a root, built in this order; each is built by curate.rehearsal.<part>
PARTS = ("pools", "evalsets", "datasets", "models")
UP_TIMEOUT_S = 60.0
DOWN_TIMEOUT_S = 10.0


def _code_hash(module) -> str:
    """The sha256 of a part's module and of the synthetic world it draws from."""
    here = Path(__file__).resolve().parent
    synthetic = here.parent / "data" / "synthetic"
    files = [Path(module.__file__), here / "files.py", here / "hub.py", *sorted(synthetic.glob("*.py"))]
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.name.encode() + b"\0" + f.read_bytes())
    return digest.hexdigest()


def _read_built(root: Path) -> dict:
    path = root / BUILT
    return json.loads(path.read_text()) if path.is_file() else {}


def _write_built(root: Path, built: dict) -> None:
    tmp = root / (BUILT + ".tmp")
    tmp.write_text(json.dumps(built, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, root / BUILT)


def _part_inputs(part: str, module, port: int, rows: int, only: dict | None = None) -> dict:
    inputs = {"code": _code_hash(module)}
    if getattr(module, "USES_PORT", True):  # a part whose files hold no URL says so
        inputs["port"] = int(port)
    if part == "pools":
        inputs["rows"] = int(rows)
    if (only or {}).get(part) is not None:
        inputs["only"] = sorted(only[part])
    return inputs


def _part_arguments(part: str, rows: int, jobs: int, only: dict | None) -> dict:
    chosen = (only or {}).get(part)
    if part == "pools":
        return {"rows": rows, "jobs": jobs, "pools": chosen}
    if part == "models" and chosen is not None:
        from curate.rehearsal.models import catalogue

        models = catalogue()
        unknown = sorted(set(chosen) - set(models))
        if unknown:
            raise ValueError(f"unknown models {unknown}: not in config/models.yaml")
        return {"models": {name: models[name] for name in chosen}}
    if chosen is not None:
        raise ValueError(f"part {part} cannot be built in part")
    return {}


def build(
    root,
    port: int = DEFAULT_PORT,
    rows: int | None = None,
    jobs: int = 1,
    force: bool = False,
    only: dict | None = None,
) -> dict:
    """Build the parts of `root` that are missing or out of date; returns ``built.json``'s
    content. A part whose module is not in this checkout is recorded as missing. `only`:
    ``{"pools": [...], "models": [...]}`` builds just those pools or `models:` entries (a slice
    of the paper scale needs a few); a root built so is rebuilt whole when asked without it."""
    from curate.rehearsal.pools import DEFAULT_ROWS

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rows = DEFAULT_ROWS if rows is None else int(rows)
    built = _read_built(root)
    for part in PARTS:
        try:
            module = importlib.import_module(f"curate.rehearsal.{part}")
        except ModuleNotFoundError as err:
            if err.name != f"curate.rehearsal.{part}":
                raise
            log.warning("part %s: no curate.rehearsal.%s in this checkout, not built", part, part)
            built[part] = {"missing": True}
            _write_built(root, built)
            continue
        inputs = _part_inputs(part, module, port, rows, only)
        if not force and built.get(part, {}).get("inputs") == inputs:
            log.info("part %s: up to date", part)
            continue
        log.info("part %s: building", part)
        built.pop(part, None)
        _write_built(root, built)  # a build that stops half way is not recorded as done
        start = time.time()
        summary = module.build(root, port, **_part_arguments(part, rows, jobs, only))
        built[part] = {"inputs": inputs, "seconds": round(time.time() - start, 1), "summary": summary}
        _write_built(root, built)
        log.info("part %s: built in %.1f s", part, time.time() - start)
    return built


def out_of_date(root, port: int, rows: int | None = None) -> list[str]:
    """The parts `build` would build now."""
    from curate.rehearsal.pools import DEFAULT_ROWS

    root = Path(root)
    rows = DEFAULT_ROWS if rows is None else int(rows)
    built = _read_built(root)
    stale = []
    for part in PARTS:
        try:
            module = importlib.import_module(f"curate.rehearsal.{part}")
        except ModuleNotFoundError as err:
            if err.name != f"curate.rehearsal.{part}":
                raise
            continue
        if built.get(part, {}).get("inputs") != _part_inputs(part, module, port, rows):
            stale.append(part)
    return stale


# --------------------------------------------------------------------------------------------
# The background server
# --------------------------------------------------------------------------------------------


def answers(port: int, timeout: float = 2.0) -> dict | None:
    """The running server's summary, or None when nothing answers on the port."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{int(port)}/", timeout=timeout) as response:
            return json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _running_pid(root: Path) -> int | None:
    """The pid in ``R/server.pid`` if that process is alive and is this root's server."""
    path = root / PID_FILE
    if not path.is_file():
        return None
    try:
        pid = int(path.read_text().split()[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (ValueError, IndexError, OSError):
        return None
    if b"curate.rehearsal" in cmdline and b"serve" in cmdline:
        return pid
    return None


def up(
    root,
    port: int = DEFAULT_PORT,
    rows: int | None = None,
    jobs: int = 1,
    stall_s: float | None = None,
    only: dict | None = None,
) -> int:
    """Build what is out of date (`build`) and start the server in the background; returns its pid."""
    root = Path(root).resolve()
    build(root, port, rows, jobs, only=only)
    pid = _running_pid(root)
    if pid is not None:
        summary = answers(port)
        if summary is not None and summary.get("root") == str(root):
            log.info("already serving %s on port %d (pid %d)", root, port, pid)
            return pid
        raise RuntimeError(f"a server of {root} runs as pid {pid} but not on port {port}: `down` it first")
    if answers(port) is not None:
        raise RuntimeError(f"something else answers on 127.0.0.1:{port}")
    command = [sys.executable, "-m", "curate.rehearsal", "serve", "--root", str(root), "--port", str(port)]
    if stall_s is not None:
        command += ["--stall-s", str(stall_s)]
    with open(root / LOG_FILE, "ab") as logfile:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=logfile, stderr=subprocess.STDOUT, start_new_session=True
        )
    (root / PID_FILE).write_text(f"{process.pid}\n")
    deadline = time.time() + UP_TIMEOUT_S
    while time.time() < deadline:
        if process.poll() is not None:
            (root / PID_FILE).unlink(missing_ok=True)
            raise RuntimeError(f"the server exited with {process.returncode}; see {root / LOG_FILE}")
        if answers(port, timeout=1.0) is not None:
            log.info("serving %s at http://127.0.0.1:%d (pid %d)", root, port, process.pid)
            return process.pid
        time.sleep(0.2)
    process.terminate()
    raise RuntimeError(f"the server did not answer on port {port} within {UP_TIMEOUT_S:.0f} s; see {root / LOG_FILE}")


def down(root) -> bool:
    """Stop the root's background server; False when none was running."""
    root = Path(root).resolve()
    pid = _running_pid(root)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.time() + DOWN_TIMEOUT_S
        while _alive(pid) and time.time() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    (root / PID_FILE).unlink(missing_ok=True)
    return pid is not None


def _alive(pid: int) -> bool:
    """Whether `pid` still runs (a child of this process that exited is reaped)."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m curate.rehearsal", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("build", "serve", "up", "down"):
        sub = commands.add_parser(name)
        sub.add_argument("--root", required=True, type=Path, help="the built root")
        if name != "down":
            sub.add_argument("--port", type=int, default=DEFAULT_PORT, help="127.0.0.1's port the URLs name")
        if name in ("build", "up"):
            sub.add_argument("--rows", type=int, default=None, help="datacomp-small's rows (others are multiples)")
            sub.add_argument("--jobs", type=int, default=1, help="processes drawing the pools' images")
            sub.add_argument("--pools", default=None, help="only these pools, comma-separated (default: all)")
            sub.add_argument(
                "--models", default=None, help="only these models: entries, comma-separated (default: all)"
            )
        if name == "build":
            sub.add_argument("--force", action="store_true", help="rebuild every part")
        if name in ("serve", "up"):
            sub.add_argument("--stall-s", type=float, default=None, help="seconds a timing-out image stalls")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    only = None
    if args.command in ("build", "up"):
        only = {part: getattr(args, part).split(",") for part in ("pools", "models") if getattr(args, part)}
    if args.command == "build":
        built = build(args.root, args.port, args.rows, args.jobs, args.force, only)
        print(json.dumps({part: {k: v for k, v in e.items() if k != "summary"} for part, e in built.items()}, indent=2))
    elif args.command == "serve":
        from curate.rehearsal.server import serve

        serve(args.root, args.port, args.stall_s)
    elif args.command == "up":
        pid = up(args.root, args.port, args.rows, args.jobs, args.stall_s, only)
        print(f"http://127.0.0.1:{args.port} (pid {pid})")
    else:
        print("stopped" if down(args.root) else "no server was running")
    return 0
