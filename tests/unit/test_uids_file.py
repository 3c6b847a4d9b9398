"""A subset made elsewhere (uids_file), published subsets (published_uids), and the paper rows they
make buildable."""

import copy
import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pandas as pd
import pytest

from curate.data.published import fetch_published_uids
from curate.data.subset import SUBSET_DTYPE, read_uids_file, u8u8_to_uids, uids_to_u8u8
from curate.registry import ConfigError
from curate.reporting.papers import load_papers
from curate.selection.methods import select
from curate.workflow.config import REPO, check_config, load_config
from curate.workflow.paper_rows import implemented_methods, resolve_row
from curate.workflow.paths import Paths
from curate.workflow.workspace import Workspace

UIDS = [f"{i:032x}" for i in (7, 3, 3, 250, 1)]  # unsorted, one repeat


def test_every_format_reads_the_same_uids_in_file_order_with_their_repeats(tmp_path):
    arr = uids_to_u8u8(UIDS)
    np.save(tmp_path / "s.npy", arr)
    pd.DataFrame({"uid": UIDS, "score": range(5)}).to_parquet(tmp_path / "s.parquet")
    pd.DataFrame({"uid": UIDS}).to_csv(tmp_path / "s.csv", index=False)
    (tmp_path / "headerless.csv").write_text("\n".join(UIDS) + "\n")
    (tmp_path / "s.txt").write_text("\n".join(UIDS[:2] + [" " + UIDS[2].upper() + " ", ""] + UIDS[3:]) + "\n")
    for name in ("s.npy", "s.parquet", "s.csv", "headerless.csv", "s.txt"):
        uids, info = read_uids_file(tmp_path / name)
        assert u8u8_to_uids(uids) == UIDS, name
        assert info | {"format": None} == {"format": None, "rows": 5, "unique": 4, "repeats": 1, "sorted": False}


def test_a_uids_file_of_another_dtype_or_with_a_bad_uid_is_refused_naming_it(tmp_path):
    np.save(tmp_path / "ints.npy", np.arange(4))
    with pytest.raises(ValueError, match=r"ints.npy \(DataComp's subset format\): subset dtype must be"):
        read_uids_file(tmp_path / "ints.npy")
    (tmp_path / "bad.txt").write_text(UIDS[0] + "\nnot-a-uid\n")
    with pytest.raises(ValueError, match=r"bad.txt: invalid uid 'not-a-uid'"):
        read_uids_file(tmp_path / "bad.txt")
    pd.DataFrame({"a": UIDS, "b": UIDS}).to_parquet(tmp_path / "two.parquet")
    with pytest.raises(ValueError, match="no `uid` column"):
        read_uids_file(tmp_path / "two.parquet")


def test_the_uids_file_selection_keeps_every_repeat_and_the_subset_is_written_sorted(tmp_path):
    (tmp_path / "mine.txt").write_text("\n".join(UIDS))
    params = {"method": "uids_file", "path": str(tmp_path / "mine.txt"), "published": None, "format": None}
    subset = select(params | {"max_missing": None}, {"uids": str(tmp_path / "mine.txt")})
    assert subset.dtype == SUBSET_DTYPE and u8u8_to_uids(subset) == UIDS


class _Files:
    def __init__(self, files):
        self.files = files
        handler = self._handler()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def _handler(self):
        files = self.files

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                data = files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        return Handler


def test_published_uids_come_through_the_url_mirror_and_are_checked(tmp_path, monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    body = ("\n".join(UIDS) + "\n").encode()
    server = _Files({"/web/example.org/dfn/medium.txt": body})
    mirror = {"https://": f"http://127.0.0.1:{server.httpd.server_address[1]}/web/"}
    entry = {"url": "https://example.org/dfn/medium.txt", "path": None, "format": None}
    sha = hashlib.sha256(body).hexdigest()
    record = fetch_published_uids(
        "dfn-medium", entry | {"sha256": sha}, tmp_path / "dfn-medium.npy", tmp_path / "dfn-medium.json", mirror
    )
    assert record["sha256"] == sha and record["sha256_checked"] and record["repeats"] == 1 and not record["sorted"]
    assert u8u8_to_uids(np.load(tmp_path / "dfn-medium.npy")) == UIDS  # file order, repeats kept
    with pytest.raises(
        ValueError, match=r"published_uids.dfn-medium: the sha256 of https://example.org/dfn/medium.txt"
    ):
        fetch_published_uids(
            "dfn-medium", entry | {"sha256": "0" * 64}, tmp_path / "x.npy", tmp_path / "x.json", mirror
        )
    server.httpd.shutdown()


def _config(**overrides):
    return load_config(overrides=overrides)


def _paper_row(paper, table, selection):
    papers = load_papers(REPO / "papers")
    return next(r for r in papers[paper]["tables"][table]["rows"] if r["selection"] == selection)


def test_published_rows_are_built_when_their_uids_are_configured_and_say_why_not_otherwise():
    row = _paper_row("datacomp", "leaderboard_medium", "dfn")
    methods, paths = implemented_methods(), Paths("data")
    medium = _config(scale="medium")
    assert resolve_row(medium, row, methods, paths)["status"] == "published uids not available: dfn-medium"
    configured = _config(scale="medium", published_uids={"dfn-medium": {"url": "https://example.org/dfn.npy"}})
    built = resolve_row(configured, row, methods, paths)
    assert built["built"] and built["runs_as"] == "dfn"
    assert built["evaluation"] == "data/evals/datacomp-medium/dfn/datacomp-medium/datacomp38.jsonl"
    ws = Workspace(configured)
    assert ws.selection_inputs("datacomp-medium", "dfn") == {"uids": "data/published_uids/dfn-medium.npy"}
    assert ws.subset_max_missing("dfn") is None  # the config's integrity setting
    # at tiny the row moves to the synthetic pool, for which nothing is published
    tiny = _config(published_uids={"dfn-medium": {"url": "https://example.org/dfn.npy"}})
    assert resolve_row(tiny, row, methods, paths)["status"].startswith(
        "published uids not available for pool synthetic-tiny"
    )
    with pytest.raises(ConfigError, match="not for pool 'synthetic-tiny'"):
        Workspace(tiny).selection_inputs("synthetic-tiny", "dfn")


def test_uids_file_and_published_uids_config_errors_name_the_key():
    base = load_config()
    for mutate, key in (
        (lambda c: c["selections"].update(mine={"method": "uids_file"}), "selections.mine"),
        (
            lambda c: c["selections"].update(mine={"method": "uids_file", "path": "a", "published": "b"}),
            "selections.mine",
        ),
        (lambda c: c.update(published_uids={"x": {"sha256": None}}), "published_uids.x"),
        (lambda c: c["selections"].update(m={"method": "uids_file", "published": {"nowhere": "x"}}), "selections.m"),
    ):
        config = copy.deepcopy(base)
        mutate(config)
        with pytest.raises(ConfigError, match=key):
            check_config(config)
