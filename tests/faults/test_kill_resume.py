"""Long jobs killed with SIGKILL and run again, as the README says (``--unlock``, then the same
command; the workflow profile reruns incomplete jobs): each goes on from what its killed attempt
finished instead of starting over.

- a training killed mid-run (after its first epoch's checkpoint) resumes from that checkpoint
  (open_clip_train's ``--resume latest`` on the scratch folder the kill left), trains only the
  epochs left, the recipe's step count in all, and ends with the weights of an uninterrupted run;
- an evaluation killed after 3 of its 9 tasks keeps their records and evaluates only the other 6;
  its records equal an uninterrupted run's;
- a download killed once the chunk's first shard is complete fetches only the missing shard.

The kill lands at a fixed point: a plugin (the config's `plugins`, imported by every job and by
the training process) pauses there once, until the test kills the whole run (`kill -9` of its
process group: Snakemake, the job, its training or img2dataset processes)."""

import hashlib
import io
import os
import re
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))

PLUGIN = '''
"""Fault injection: pause a job once (a mark file says it paused) at CURATE_PAUSE_AT, until killed:
epoch: in the training process, when epoch 1 starts (epoch 0's checkpoint is saved);
task: in an evaluation, when its 4th task starts (3 records kept);
shard: in a download, once the chunk's first shard is complete (moved and recorded)."""
import os
import sys
import time
from pathlib import Path

MARK = Path(os.environ["CURATE_FAULT_MARK"])
AT = os.environ.get("CURATE_PAUSE_AT", "")


def pause():
    if not MARK.exists():
        MARK.write_text(str(os.getpid()))
        time.sleep(600)


if AT == "epoch" and sys.argv and sys.argv[0].endswith(os.path.join("curate", "training", "clip.py")):
    import open_clip_train.main as ocm

    _train = ocm.train_one_epoch

    def train_one_epoch(*args, **kwargs):
        if args[3] == 1:
            pause()
        return _train(*args, **kwargs)

    ocm.train_one_epoch = train_one_epoch
elif AT == "task":
    import curate.evaluation.evaluate as ev

    _task, _calls = ev.evaluate_task, []

    def evaluate_task(*args, **kwargs):
        _calls.append(1)
        if len(_calls) == 4:
            pause()
        return _task(*args, **kwargs)

    ev.evaluate_task = evaluate_task
elif AT == "shard":
    import curate.data.download as dl

    _record = dl.record_shard

    def record_shard(*args, **kwargs):
        out = _record(*args, **kwargs)
        pause()
        return out

    dl.record_shard = record_shard
'''

TINY = {
    "pools": {"synthetic-tiny": {"n_shards": 2, "samples_per_shard": 30, "shards_per_chunk": 2}},
    # 3 epochs of 4 steps (768 samples seen, batches of 64)
    "recipes": {"tiny-clip": {"samples_seen": 768, "epochs": 3, "batch_size": 64, "log_every_n_steps": 1}},
    "plugins": ["pause_once"],
}
MODEL = "data/models/synthetic-tiny/no_filter/tiny-clip"
EVALUATION = "data/evals/synthetic-tiny/no_filter/tiny-clip/synthetic.jsonl"


def workdir(tmp_path, name, overlay):
    work = tmp_path / name
    (work / "plugins").mkdir(parents=True)
    (work / "plugins" / "pause_once.py").write_text(PLUGIN)
    (work / "fault.yaml").write_text(yaml.safe_dump(overlay))
    return work


def environment(work, pause_at=""):
    return dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(filter(None, [str(work / "plugins"), str(ROOT), os.environ.get("PYTHONPATH")])),
        CURATE_FAULT_MARK=str(work / "paused"),
        CURATE_PAUSE_AT=pause_at,
        HF_HUB_OFFLINE="1",
        NO_ALBUMENTATIONS_UPDATE="1",
        no_proxy="127.0.0.1,localhost",
        NO_PROXY="127.0.0.1,localhost",
    )


def snakemake(work, env, *args, background=False):
    command = [SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), "--configfile", str(ROOT / "config.yaml")]
    command += [str(work / "fault.yaml"), "--directory", str(work), "--cores", "2", *args]
    if background:  # its own process group, so that the kill takes the job and its children with it
        return subprocess.Popen(
            command, cwd=work, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
    done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return done


def killed_at_the_pause(work, env, target):
    """Run `target` until the plugin pauses it, then kill -9 the whole run."""
    run = snakemake(work, env, target, background=True)
    try:
        deadline = time.monotonic() + 600
        while not (work / "paused").exists() and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert (work / "paused").exists(), run.stdout.read().decode()[-4000:] if run.poll() is not None else "no pause"
    finally:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()
        run.stdout.close()
    time.sleep(1)  # the killed processes' files closed


def digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_killed_training_resumes_and_killed_evaluation_redoes_only_the_other_tasks(tmp_path):
    # the reference: the same run, uninterrupted
    reference = workdir(tmp_path, "reference", TINY)
    snakemake(reference, environment(reference), EVALUATION)

    work = workdir(tmp_path, "killed", TINY)
    env = environment(work, "epoch")
    killed_at_the_pause(work, env, MODEL)
    scratch = work / "data/scratch/train/synthetic-tiny/no_filter/tiny-clip"
    assert (scratch / "logs/run/checkpoints/epoch_latest.pt").is_file()  # epoch 0's, kept by the kill
    assert not (work / MODEL / "open_clip_model.safetensors").exists()
    log_path = work / "data/logs/train_clip/synthetic-tiny/no_filter/tiny-clip.log"
    killed_log = log_path.read_text()  # Snakemake starts the job's log anew when it runs it again
    snakemake(work, env, "--unlock")
    snakemake(work, env, MODEL)  # the same command again
    log = log_path.read_text()
    assert "open_clip_train resumes from it" in log and "resuming checkpoint" in log and "(epoch 1)" in log
    # every step of the recipe once, 3 epochs of 4: epoch 0 before the kill, epochs 1 and 2 after it,
    # the schedule going on from step 4 (warm-up: lr 0.002 * (step + 1) / 20)
    steps = lambda text: re.findall(r"Train Epoch: (\d) \[\s*(\d+)/256", text)  # noqa: E731
    per_epoch = [str(n) for n in (64, 128, 192, 256)]
    assert steps(killed_log) == [("0", n) for n in per_epoch]
    assert steps(log) == [(e, n) for e in "12" for n in per_epoch]
    assert re.search(r"Train Epoch: 1 \[\s*64/256 .* LR: 0\.000500 ", log)
    assert digest(work / MODEL / "open_clip_model.safetensors") == digest(
        reference / MODEL / "open_clip_model.safetensors"
    )
    assert not scratch.exists()

    (work / "paused").unlink()
    env = environment(work, "task")
    killed_at_the_pause(work, env, EVALUATION)
    progress = work / "data/evals/synthetic-tiny/no_filter/tiny-clip/synthetic.tasks"
    assert sorted(p.name for p in progress.iterdir()) == ["colour.json", "objects.json", "shape.json"]
    snakemake(work, env, "--unlock")
    snakemake(work, env, EVALUATION)
    log = (work / "data/logs/evaluate_model/synthetic-tiny/no_filter/tiny-clip/synthetic.log").read_text()
    second = log[log.rindex("kept from an earlier attempt") - 200 :]
    for task in ("objects", "shape", "colour"):
        assert f"task {task}: kept from an earlier attempt" in log
    assert "3 of 9 tasks were kept from an earlier attempt, 6 evaluated" in second
    evaluated = re.findall(r"evaluating \S+ on task (\w+)", log[log.index("task objects: kept") :])
    assert evaluated == ["size", "background", "count", "position", "digits", "retrieval"]
    assert (work / EVALUATION).read_bytes() == (reference / EVALUATION).read_bytes()
    assert not progress.exists()


class _Images:
    """Loopback HTTP: /img/<row>.jpg, counting the requests of each row."""

    def __init__(self):
        self.hits, self.lock = {}, threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                row = int(self.path.rsplit("/", 1)[-1].split(".")[0])
                with server.lock:
                    server.hits[row] = server.hits.get(row, 0) + 1
                buffer = io.BytesIO()
                Image.new("RGB", (32, 32), (row * 5 % 255, 40, 90)).save(buffer, "JPEG")
                data = buffer.getvalue()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def test_killed_download_fetches_only_the_missing_shards(tmp_path):
    server = _Images()
    port = server.httpd.server_address[1]
    overlay = {
        "pools": {
            "dl-pool": {
                "source": "datacomp",
                "n_shards": 2,
                "samples_per_shard": 20,
                "shards_per_chunk": 2,
                "metadata": {"hf_dataset": "local/fault"},
                "download": {"processes": 1, "threads": 4, "retries": 0, "retry_failed": False},
            }
        },
        "plugins": ["pause_once"],
    }
    work = workdir(tmp_path, "download", overlay)
    source = work / "data/pools/dl-pool/metadata/source"  # the fetched metadata, put in place
    source.mkdir(parents=True)
    rows = {"uid": [f"{r:032x}" for r in range(40)], "url": [f"http://127.0.0.1:{port}/img/{r}.jpg" for r in range(40)]}
    rows["text"] = [f"a picture number {r}" for r in range(40)]
    pq.write_table(pa.table(rows), source / "part-0.parquet")
    (source / "fetch.json").write_text('{"hf_dataset": "local/fault", "files": [], "n_rows": 40}\n')
    target = "data/pools/dl-pool/shards/00000.download.json"
    env = environment(work, "shard")
    killed_at_the_pause(work, env, target)
    chunk = work / "data/pools/dl-pool/shards/00000"
    assert sorted(p.name for p in chunk.glob("*.tar")) == ["00000000.tar"]  # one shard done, one not
    first = dict(server.hits)
    assert sorted(first) == list(range(40)) and set(first.values()) == {1}
    snakemake(work, env, "--unlock")
    snakemake(work, env, target)
    log = (work / "data/logs/download_pool_chunk/dl-pool/00000.log").read_text()
    assert "shards downloaded [1], already complete [0]" in log
    again = {row: n - first.get(row, 0) for row, n in server.hits.items() if n - first.get(row, 0)}
    assert sorted(again) == list(range(20, 40))  # the missing shard's rows only, once each
    assert set(again.values()) == {1}
    assert sorted(p.name for p in chunk.glob("*.tar")) == ["00000000.tar", "00000001.tar"]
    server.httpd.shutdown()
    assert np.all([p.stat().st_size > 0 for p in chunk.glob("*.tar")])
