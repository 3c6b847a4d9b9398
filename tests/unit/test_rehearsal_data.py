"""The rehearsal's local internet, data side: a small root built from seeds, served on loopback,
and the workflow's own fetch, download and evaluation code run against it unchanged.

Hugging Face clients read ``HF_ENDPOINT`` and ``HF_HUB_OFFLINE`` when they are imported, so the
fetches run in a child process whose environment points at the server (as a job's does: the
config's ``hub_endpoint`` is set before any Hugging Face import, `curate.workflow.job`).
"""

import glob
import hashlib
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from curate.evaluation.datacomp import DATACOMP38
from curate.rehearsal import cli, evalsets, pools
from curate.rehearsal.hub import repo_dir
from curate.rehearsal.server import make_server

ROOT = Path(__file__).resolve().parents[2]
ROWS = 20
#: the server's stall and the download's timeout: a stalled image times out, and only a stalled one on
#: a busy machine
STALL_S, TIMEOUT_S = 6.0, 5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("rehearsal") / "root"
    port = free_port()
    record = cli.build(root, port, rows=ROWS)
    return root, port, record


@pytest.fixture(scope="module")
def served(built):
    root, port, _ = built
    server = make_server(root, port, stall_s=STALL_S, quiet=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    yield root, server
    server.shutdown()
    server.server_close()


def run_online(code: str, server, tmp_path) -> dict:
    """Run `code` in a child process online against the server; it prints one JSON line."""
    env = dict(os.environ, HF_HUB_OFFLINE="0", HF_HOME=str(tmp_path / "hf_home"), PYTHONPATH=str(ROOT))
    env.pop("HF_DATASETS_OFFLINE", None)
    script = "from curate.data.mirrors import use_hub_endpoint\nuse_hub_endpoint(%r)\n" % server.url
    result = subprocess.run(
        [sys.executable, "-c", script + textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def catalogue(name):
    return yaml.safe_load((ROOT / "config" / f"{name}.yaml").read_text())[name]


# --------------------------------------------------------------------------------------------
# What is built
# --------------------------------------------------------------------------------------------


def test_every_real_pool_of_the_catalogue_has_its_source(built):
    root, _, record = built
    real = {name: p for name, p in catalogue("pools").items() if p["source"] != "synthetic"}
    assert set(real) == set(pools.POOLS)
    for name, entry in real.items():
        folder = repo_dir(root, "dataset", entry["metadata"]["hf_dataset"])
        assert pools.POOLS[name].hf_dataset == entry["metadata"]["hf_dataset"]
        fetched = [
            f
            for f in record["pools"]["summary"][name]["files"]
            if any(Path(f).match(p) for p in entry["metadata"]["allow_patterns"])
        ]
        assert fetched, f"{name}: no file matches {entry['metadata']['allow_patterns']}"
        names = pq.read_schema(folder / fetched[0]).names
        for column in (entry["metadata"].get("columns") or {"url": "url", "text": "text"}).values():
            assert column in names, f"{name}: source column {column} missing from {names}"
    rows = {name: s["rows"] for name, s in record["pools"]["summary"].items()}
    assert rows["datacomp-small"] < rows["datacomp-medium"] < rows["datacomp-large"] < rows["datacomp-xlarge"]


def test_datacomp_metadata_and_features_agree(built):
    root, port, _ = built
    folder = repo_dir(root, "dataset", "mlfoundations/datacomp_xlarge")
    parquets = sorted(folder.glob("*.parquet"))
    assert len(parquets) >= 2 and all(len(p.stem) == 32 for p in parquets)
    columns = [
        "uid",
        "url",
        "text",
        "original_width",
        "original_height",
        "clip_b32_similarity_score",
        "clip_l14_similarity_score",
        "face_bboxes",
        "sha256",
    ]
    tables = []
    for path in parquets:
        table = pq.read_table(path)
        assert table.column_names == columns
        with np.load(path.with_suffix(".npz")) as z:
            assert {k: z[k].shape[1] for k in z} == {"b32_img": 512, "b32_txt": 512, "l14_img": 768, "l14_txt": 768}
            for model in ("b32", "l14"):
                img, txt = z[f"{model}_img"].astype(np.float64), z[f"{model}_txt"].astype(np.float64)
                assert len(img) == table.num_rows
                np.testing.assert_allclose(np.linalg.norm(img, axis=1), 1, atol=2e-3)
                cos = (img * txt).sum(1) / np.linalg.norm(img, axis=1) / np.linalg.norm(txt, axis=1)
                np.testing.assert_allclose(table.column(f"clip_{model}_similarity_score").to_numpy(), cos, atol=1e-5)
        tables.append(table.to_pandas())
    import pandas as pd

    meta = pd.concat(tables)
    assert meta.url.str.startswith(f"http://127.0.0.1:{port}/img/datacomp-xlarge/").all()
    truth = pq.read_table(root / "ground_truth" / "datacomp-xlarge.parquet").to_pandas()
    both = meta.merge(truth[["uid", "noise_type"]], on="uid")
    by_kind = both.groupby("noise_type").clip_l14_similarity_score.mean()
    assert by_kind["clean"] > by_kind["mismatched_caption"] + 0.1
    small = np.minimum(meta.original_width, meta.original_height) < 200
    assert 0 < small.mean() < 0.6  # DataComp's basic filter has images to drop, not all


def test_build_is_seeded(built, tmp_path):
    root, port, _ = built
    pools.build(tmp_path / "again", port, rows=ROWS)
    for folder in ("hub/datasets/mlfoundations/datacomp_small", "hub/datasets/laion/laion400m", "img/cc3m"):
        first = {p.relative_to(root / folder): p.read_bytes() for p in (root / folder).rglob("*") if p.is_file()}
        again = {
            p.relative_to(tmp_path / "again" / folder): p.read_bytes()
            for p in (tmp_path / "again" / folder).rglob("*")
            if p.is_file()
        }
        assert first == again, folder


def test_a_pool_built_alone_has_the_bytes_it_has_among_all(built, tmp_path):
    root, port, _ = built
    summary = pools.build(tmp_path / "part", port, rows=ROWS, pools=["cc3m"])
    assert list(summary) == ["cc3m"]
    for folder in ("img/cc3m", "hub/datasets/google-research-datasets/conceptual_captions"):
        whole = {p.relative_to(root / folder): p.read_bytes() for p in (root / folder).rglob("*") if p.is_file()}
        alone = {
            p.relative_to(tmp_path / "part" / folder): p.read_bytes()
            for p in (tmp_path / "part" / folder).rglob("*")
            if p.is_file()
        }
        assert whole and whole == alone, folder
    assert not (tmp_path / "part" / "img" / "datacomp-small").exists()
    with pytest.raises(ValueError, match="unknown pools \\['nope'\\]"):
        pools.build(tmp_path / "bad", port, rows=ROWS, pools=["nope"])


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------


def request(url, method="GET", data=None, headers=None):
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def test_server_answers_as_the_hub(served):
    root, server = served
    repo = "google-research-datasets/conceptual_captions"
    status, _, body = request(f"{server.url}/api/datasets/{repo}/revision/main")
    info = json.loads(body)
    assert status == 200 and len(info["sha"]) == 40
    assert "unlabeled/train-00000-of-00002.parquet" in {s["rfilename"] for s in info["siblings"]}
    _, _, body = request(f"{server.url}/api/datasets/{repo}/tree/main")
    assert {(e["type"], e["path"]) for e in json.loads(body)} == {("directory", "unlabeled"), ("file", "README.md")}
    _, _, body = request(
        f"{server.url}/api/datasets/{repo}/paths-info/{info['sha']}",
        "POST",
        b"paths=unlabeled&paths=unlabeled/validation-00000-of-00001.parquet&paths=nothing",
    )
    entries = {e["path"]: e for e in json.loads(body)}
    assert set(entries) == {"unlabeled", "unlabeled/validation-00000-of-00001.parquet"}
    parquet = entries["unlabeled/validation-00000-of-00001.parquet"]
    data = (repo_dir(root, "dataset", repo) / parquet["path"]).read_bytes()
    assert parquet["lfs"]["oid"] == hashlib.sha256(data).hexdigest()

    url = f"{server.url}/datasets/{repo}/resolve/main/{parquet['path']}"
    status, headers, body = request(url, "HEAD")
    assert status == 200 and body == b"" and headers["X-Repo-Commit"] == info["sha"]
    assert headers["X-Linked-Etag"].strip('"') == parquet["lfs"]["oid"] and int(headers["Content-Length"]) == len(data)
    status, headers, body = request(url, headers={"Range": "bytes=4-11"})
    assert status == 206 and body == data[4:12] and headers["Content-Range"] == f"bytes 4-11/{len(data)}"

    for path, code in [
        (f"/api/datasets/{repo}/revision/v9", "RevisionNotFound"),
        ("/api/models/nobody/nothing", "RepoNotFound"),
        (f"/datasets/{repo}/resolve/main/missing.parquet", "EntryNotFound"),
    ]:
        status, headers, _ = request(server.url + path)
        assert (status, headers.get("X-Error-Code")) == (404, code), path
    status, _, _ = request(server.url + "/web/../../etc/passwd")
    assert status == 404


# --------------------------------------------------------------------------------------------
# The workflow's fetch and download code against the server
# --------------------------------------------------------------------------------------------


def test_pool_metadata_fetch_split_and_download_meet_every_fault(served, tmp_path):
    from curate.data.download import download_chunk, download_report, split_metadata
    from curate.data.pools import prepare_metadata

    root, server = served
    entries = catalogue("pools")
    fetched = run_online(
        f"""
        import json
        from curate.data.pools import fetch_metadata
        out = {{}}
        for pool, meta in {json.dumps({p: entries[p]["metadata"] for p in ("datacomp-small", "cc3m")})}.items():
            record = fetch_metadata(meta["hf_dataset"], {str(tmp_path)!r} + "/" + pool, meta["allow_patterns"],
                                    meta.get("revision"))
            out[pool] = record
        print(json.dumps(out))
        """,
        server,
        tmp_path,
    )
    assert fetched["datacomp-small"]["n_rows"] == ROWS
    assert [f["path"] for f in fetched["cc3m"]["files"]] == [
        "unlabeled/train-00000-of-00002.parquet",
        "unlabeled/train-00001-of-00002.parquet",
    ]
    cc3m = entries["cc3m"]["metadata"]
    summary = prepare_metadata(tmp_path / "cc3m", tmp_path / "cc3m.parquet", cc3m["columns"], cc3m["uid_from"])
    assert summary["rows"] == 2 * ROWS

    chunks = split_metadata(tmp_path / "datacomp-small", tmp_path / "split", samples_per_shard=10, shards_per_chunk=2)
    assert len(chunks) == 1
    download_chunk(
        chunks[0],
        tmp_path / "shards" / "00000",
        first_shard_id=0,
        n_shards=2,
        samples_per_shard=10,
        processes=1,
        threads=8,
        retries=0,
        timeout=TIMEOUT_S,
    )
    report = download_report(tmp_path / "shards" / "00000")
    faults = json.loads((root / "faults.json").read_text())["faults"]
    urls = pq.read_table(chunks[0], columns=["url"]).column("url").to_pylist()
    expected = {"404": "http_404", "timeout": "timeout", "corrupt": "decode_error", "changed": "hash_mismatch"}
    wanted = {}
    for url in urls:
        if url in faults:
            wanted[expected[faults[url]]] = wanted.get(expected[faults[url]], 0) + 1
    assert set(wanted) == set(expected.values())
    assert report["failures_by_category"] == wanted
    assert report["successes"] == ROWS - sum(wanted.values())


# --------------------------------------------------------------------------------------------
# Evaluation sets
# --------------------------------------------------------------------------------------------

DATACOMP_TASKS = ["imagenet1k", "retrieval/flickr_1k_test_image_text_retrieval", "fairness/geode", "misc/winogavil"]
MOS_BLIP_TASKS = ["vqav2", "nlvr2", "refcoco_plus", "coco_caption"]


def test_every_fetched_task_has_a_source_built(built):
    root, _, record = built
    tasks = evalsets.fetched_tasks()
    suites = catalogue("suites")
    for suite in ("mos-clip", "mos-llava", "mos-blip"):
        assert all(t.get("source") for t in suites[suite]["tasks"].values()), suite
    built_tasks = {t for s in record["evalsets"]["summary"].values() for t in s["tasks"]}
    assert {f"datacomp38/{k}" for k in DATACOMP38} <= built_tasks
    for source in tasks:
        folder = repo_dir(root, "dataset", source)
        assert (folder / "test" / "nshards.txt").is_file() or (folder / "data").is_dir(), source


def test_eval_tasks_fetch_and_evaluate(served, tmp_path):
    """The tasks fetched as `fetch_eval_task` does, then DataComp's evaluation of a tiny open_clip
    model that open_clip itself downloads from the server (``hf-hub:``)."""
    import shutil

    from curate.data.evalsets import task_samples
    from tests.unit.model_fixtures import export_random_tiny_model

    root, server = served
    model_repo = "rehearsal-test/tiny-clip"
    shutil.copytree(export_random_tiny_model(tmp_path / "model"), repo_dir(root, "model", model_repo))
    mos_blip = catalogue("suites")["mos-blip"]["tasks"]
    wanted = {("datacomp38", k): DATACOMP38[k] for k in DATACOMP_TASKS}
    wanted.update({("mos-blip", k): mos_blip[k] for k in MOS_BLIP_TASKS})
    wanted[("mos-llava", "nocaps")] = catalogue("suites")["mos-llava"]["tasks"]["nocaps"]
    jobs = [[suite, key, task, str(tmp_path / "evalsets" / suite / key)] for (suite, key), task in wanted.items()]
    tasks = {
        key: {"dir": out, "type": task["type"], "main_metric": task["main_metric"], "name": task["name"]}
        for suite, key, task, out in jobs
        if suite == "datacomp38"
    }
    out = run_online(
        f"""
        import json
        from curate.data.evalsets import fetch_eval_task
        from curate.evaluation.evaluate import evaluate_suite
        origins = [fetch_eval_task(key, task, out) for suite, key, task, out in {jobs!r}]
        records = evaluate_suite("hf-hub:{model_repo}", {tasks!r}, batch_size=16)
        print(json.dumps({{"origins": origins, "records": records}}))
        """,
        server,
        tmp_path,
    )
    assert out["origins"][0] == f"hf://datasets/{DATACOMP38['imagenet1k']['source']}"
    records = {r["key"]: r for r in out["records"]}
    assert set(records) == set(DATACOMP_TASKS)
    for key, record in records.items():
        assert np.isfinite(record["metrics"]["main_metric"]), key
    assert records["imagenet1k"]["metrics"]["n_samples"] == evalsets.N_CLASSIFICATION
    assert records["retrieval/flickr_1k_test_image_text_retrieval"]["metrics"]["n_images"] == evalsets.N_RETRIEVAL
    assert records["misc/winogavil"]["metrics"]["n_samples"] == evalsets.N_WINOGAVIL

    folders = {key: out for suite, key, task, out in jobs}
    vqa = task_samples(folders["vqav2"])
    assert len(vqa) == evalsets.N_VQA
    question = json.loads(vqa[0]["json"])
    assert set(question) >= {"question", "answers", "answer_type"} and len(question["answers"]) == 10
    nlvr = task_samples(folders["nlvr2"])
    assert {"left.jpg", "right.jpg", "json"} <= set(nlvr[0]) and isinstance(json.loads(nlvr[0]["json"])["label"], bool)
    ref = json.loads(task_samples(folders["refcoco_plus"])[0]["json"])
    assert 0 <= ref["target"] < len(ref["boxes"]) and all(len(b) == 4 for b in ref["boxes"])
    nocaps = task_samples(folders["nocaps"])
    assert len(nocaps[0]["txt"].decode().splitlines()) == evalsets.NOCAPS_CAPTIONS
    assert len(task_samples(folders["coco_caption"])[0]["txt"].decode().splitlines()) == evalsets.RETRIEVAL_CAPTIONS


# --------------------------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------------------------


def test_cli_rebuilds_only_what_changed_and_runs_up_down(built, tmp_path):
    import shutil

    root, port, record = built
    copy = tmp_path / "root"
    shutil.copytree(root, copy)
    env = dict(os.environ, PYTHONPATH=str(ROOT))

    def cli_run(*args):
        result = subprocess.run(
            [sys.executable, "-m", "curate.rehearsal", *args, "--root", str(copy)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr[-4000:]
        return result

    before = {p: p.stat().st_mtime_ns for p in copy.rglob("*.parquet")}
    assert "up to date" in cli_run("build", "--port", str(port), "--rows", str(ROWS)).stderr
    assert {p: p.stat().st_mtime_ns for p in copy.rglob("*.parquet")} == before

    other = free_port()
    try:
        cli_run("up", "--port", str(other), "--rows", str(ROWS), "--stall-s", "0")
        rebuilt = json.loads((copy / "built.json").read_text())
        assert rebuilt["pools"]["inputs"]["port"] == other
        assert rebuilt["evalsets"] == record["evalsets"]  # its files hold no URL
        summary = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{other}/", timeout=5).read())
        assert summary["root"] == str(copy.resolve())
        meta = pq.read_table(glob.glob(str(copy / "hub/datasets/mlfoundations/datacomp_small/*.parquet"))[0])
        url = meta.column("url")[0].as_py()
        assert url.startswith(f"http://127.0.0.1:{other}/img/")
        faults = json.loads((copy / "faults.json").read_text())["faults"]
        missing = next(u for u, kind in faults.items() if kind == "404")
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(missing, timeout=5)
        assert err.value.code == 404
        pid = int((copy / cli.PID_FILE).read_text())
        assert cli_run("up", "--port", str(other), "--rows", str(ROWS)).stdout.strip().endswith(f"(pid {pid})")
    finally:
        cli_run("down")
    assert not (copy / cli.PID_FILE).exists()
    assert cli.answers(other, timeout=1) is None
