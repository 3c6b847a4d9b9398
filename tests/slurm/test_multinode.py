"""A recipe on several nodes, on the real single-node SLURM (cluster/slurm-up.sh), as far as one
machine allows:

- what Snakemake submits for a training of a 2-node recipe: ``sbatch --nodes=2 --ntasks=2`` with one
  task and the recipe's GPUs on each node (``--ntasks-per-node=1 --gpus-per-node``), no job-wide
  ``--gpus``, and the job step run without the executor's own ``srun`` (Snakemake's ``mpi``), so
  that its script's srun reaches every node. (This cluster has one node: SLURM refuses the job, so
  the test reads the submission.)
- what that script starts inside an allocation: ``srun`` of one torchrun per node (here: the one
  node), which starts the recipe's processes per node, meeting at the allocation's first node, with
  the ranks torchrun gives them.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
RECIPE = {
    "model": "tiny-vit",
    "samples_seen": 256,
    "epochs": 1,
    "batch_size": 64,
    "lr": 0.002,
    "wd": 0.1,
    "warmup": 2,
    "beta1": 0.9,
    "beta2": 0.98,
    "eps": 1.0e-6,
    "device": "cuda",
    "world_size": 4,
    "nodes": 2,
}
MODEL = "data/models/synthetic-tiny/no_filter/tiny-clip-2n"


def job_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_", "SRUN_"))}
    env.update(HF_HUB_OFFLINE="1", WANDB_MODE="disabled", NO_ALBUMENTATIONS_UPDATE="1", OMP_NUM_THREADS="1", **extra)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


@pytest.fixture(scope="module")
def profile_env(slurm_cluster, tmp_path_factory):
    """The SLURM profile installed as setup.sh installs it, its partition line set."""
    home = tmp_path_factory.mktemp("xdg_config")
    env = job_env(XDG_CONFIG_HOME=str(home))
    subprocess.run([sys.executable, "-m", "curate.workflow.slurm_profile"], cwd=ROOT, env=env, check=True)
    profile = home / "snakemake" / "slurm" / "config.yaml"
    text = profile.read_text()
    profile.write_text(text.replace("\n  partition: null  #", f"\n  partition: {slurm_cluster['partition']}  #"))
    return env


def test_a_two_node_training_asks_sbatch_for_two_nodes_one_task_and_its_gpus_on_each(tmp_path, profile_env):
    work = tmp_path / "run"
    work.mkdir()
    overlay = {
        "pools": {"synthetic-tiny": {"n_shards": 2, "samples_per_shard": 30, "shards_per_chunk": 2}},
        "recipes": {"tiny-clip-2n": RECIPE},
    }
    (work / "nodes.yaml").write_text(yaml.safe_dump(overlay))
    base = [SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), "--configfile", str(ROOT / "config.yaml")]
    base += [str(work / "nodes.yaml"), "--directory", str(work)]
    local = subprocess.run(
        [*base, "--cores", "2", "data/reshards/synthetic-tiny/no_filter"], env=profile_env, capture_output=True
    )
    assert local.returncode == 0, local.stderr[-3000:]
    log = work / "slurm.log"
    with open(log, "w") as stream:
        run = subprocess.Popen(
            [*base, "--profile", "slurm", "--verbose", MODEL],
            cwd=work,
            env=profile_env,
            stdout=stream,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 300
        while run.poll() is None and time.monotonic() < deadline:
            text = log.read_text()
            if "sbatch call:" in text and ("has been submitted" in text or "SLURM sbatch failed" in text):
                break
            time.sleep(1)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGINT)  # Snakemake cancels what it submitted
            try:
                run.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(run.pid, signal.SIGKILL)
                run.wait()
        match = re.search(r"SLURM run ID: (curate_[0-9a-f-]+)", log.read_text())
        if match:
            subprocess.run(["scancel", "--name", match.group(1)], capture_output=True)
    text = log.read_text()
    calls = [line for line in text.splitlines() if line.startswith("sbatch call: ")]
    assert len(calls) == 1, text[-4000:]
    call = calls[0]
    assert "--comment rule_train_clip_nodes_" in call
    assert " --nodes=2 " in call and " --ntasks=2 " in call  # two nodes, one task each
    assert "--ntasks-per-node=1 --gpus-per-node=2" in call  # world_size 4 over 2 nodes
    assert "--gpus=" not in call and "--ntasks-per-gpu" not in call
    assert re.search(r" --mem \d+ ", call) and re.search(r" -t \d+ ", call) and "--requeue" in call
    # the submitted job script: this virtualenv's Snakemake as the job step, which runs the rule
    # without srun (mpi); the rule's own srun then starts one torchrun per node
    assert f'--wrap="{Path(sys.executable).parent}/python' in call and "slurm-jobstep" in call
    assert "train_clip_nodes" in call
    refused = "Requested node configuration is not available" in text or "SLURM sbatch failed" in text
    assert refused or "has been submitted" in text


PROBE = """
import json, os, socket, sys
from pathlib import Path
keys = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "GROUP_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
        "SLURM_JOB_ID", "SLURM_STEP_ID", "SLURM_NODEID", "SLURM_PROCID")
out = Path(sys.argv[1]) / f"rank{os.environ['RANK']}.json"
out.write_text(json.dumps({k: os.environ.get(k) for k in keys} | {"host": socket.gethostname()}))
"""

LAUNCH = """
import json, subprocess, sys
from curate.training.launch import per_node_command
command = per_node_command(["-m", "probe", sys.argv[1]], per_node=2)
print(json.dumps(command), flush=True)
sys.exit(subprocess.run(command).returncode)
"""


def test_inside_an_allocation_srun_starts_one_torchrun_per_node(tmp_path, slurm_cluster):
    (tmp_path / "probe.py").write_text(PROBE)
    (tmp_path / "launch.py").write_text(LAUNCH)
    out = tmp_path / "ranks"
    out.mkdir()
    env = job_env(PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]))
    salloc = [shutil.which("salloc"), "--nodes=1", "--ntasks=1", "-p", slurm_cluster["partition"], "--time=5"]
    done = subprocess.run(
        [*salloc, sys.executable, str(tmp_path / "launch.py"), str(out)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    command = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("[")))
    assert command[:5] == ["srun", "--nodes=1", "--ntasks=1", "--ntasks-per-node=1", "--kill-on-bad-exit=1"]
    assert command[5:8] == [sys.executable, "-m", "torch.distributed.run"]
    host = subprocess.run(["hostname", "-s"], capture_output=True, text=True).stdout.strip()
    assert "--nnodes=1" in command and "--nproc_per_node=2" in command and "--rdzv_backend=c10d" in command
    assert f"--rdzv_endpoint={host}:12802" in command
    ranks = {int(p.stem.removeprefix("rank")): json.loads(p.read_text()) for p in out.glob("rank*.json")}
    assert sorted(ranks) == [0, 1]  # the node's two processes, ranked by torchrun
    for rank, seen in ranks.items():
        assert seen["WORLD_SIZE"] == "2" and seen["LOCAL_RANK"] == str(rank) and seen["GROUP_RANK"] == "0"
        assert seen["SLURM_STEP_ID"] is not None and seen["SLURM_NODEID"] == "0"  # inside the srun step
        assert seen["host"] == host
