"""`snakemake --profile slurm` on a real single-node SLURM (cluster/slurm-up.sh, 2 fake GPUs, no
accounting), the profile installed as setup.sh installs it.

setup.sh's installer (`python -m curate.workflow.slurm_profile`) puts the profile into a temporary
XDG_CONFIG_HOME, and the partition line is edited as a user edits it. One chain that holds a GPU
rule, pool chunks -> train_scorer -> score_chunk x 4 -> select_subset, then runs with
`--profile slurm` in one temporary folder while the same target runs locally (--cores 2) in
another; then: the profile chose squeue (no accounting here), every job went through sbatch with
the partition, memory and runtime and left its SLURM log, the GPU rules were given a GPU
(CUDA_VISIBLE_DEVICES inside the job) and the CPU rules none, the jobs ran this virtualenv, and the
subset and the scores are the same as the local run's.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
PYTHON_BIN = Path(sys.executable).parent
SNAKEMAKE = str(PYTHON_BIN / "snakemake")
POOL, SCORER, SELECTION = "synthetic-tiny", "tiny-clip-weak", "clip_score_weak_30"
TARGET = f"data/subsets/{POOL}/{SELECTION}.npy"
# a GPU rule; train_scorer asks for its recipe's GPUs, and the tiny scorers' recipe runs on the CPU
GPU_RULES = {"score_chunk"}
CHAIN = {"synthesize_pool_chunk", "synthesize_curated_set", "train_scorer", "score_chunk", "select_subset"}
JOBNAME_PREFIX = "curate"  # the profile's
TIMEOUT = 900  # seconds per run; the pair took 9.5 minutes on 2 cores shared at load 12, polls every 40 s

SUBMITTED = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (.+?)\)\.")


def job_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_", "SRUN_"))}
    env.pop("CUDA_VISIBLE_DEVICES", None)  # inside a job it must come from SLURM, not from us
    env.update(HF_HUB_OFFLINE="1", WANDB_MODE="disabled", NO_ALBUMENTATIONS_UPDATE="1", OMP_NUM_THREADS="1")
    return env


def start(workdir, log, *args, env):
    command = [
        SNAKEMAKE,
        "--snakefile",
        str(ROOT / "Snakefile"),
        "--configfile",
        str(ROOT / "config.yaml"),
        "--directory",
        str(workdir),
        *args,
        "--",
        TARGET,
    ]
    stream = open(log, "w")
    process = subprocess.Popen(
        command, stdout=stream, stderr=subprocess.STDOUT, cwd=workdir, env=env, start_new_session=True
    )
    stream.close()
    return process


def finish(process, log, what):
    """Wait for a run; on timeout interrupt it (Snakemake cancels its SLURM jobs), then kill."""
    try:
        process.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        cancel_leftover_jobs(log)
        pytest.fail(f"{what} did not finish in {TIMEOUT} s; log tail:\n{log.read_text()[-5000:]}")
    text = log.read_text()
    assert process.returncode == 0, f"{what} failed (exit {process.returncode}); log tail:\n{text[-6000:]}"
    return text


def cancel_leftover_jobs(log):
    """scancel the jobs of this run only (the job name is the run's id)."""
    match = re.search(rf"SLURM run ID: ({JOBNAME_PREFIX}_[0-9a-f-]+)", log.read_text())
    if match:
        subprocess.run(["scancel", "--name", match.group(1)], capture_output=True)


@pytest.fixture(scope="module")
def user_config(slurm_cluster, tmp_path_factory):
    """A user's config dir with the profile installed by setup.sh's installer, then its partition
    line set to this cluster's default partition, as cluster/README.md tells a user to."""
    home = tmp_path_factory.mktemp("xdg_config")
    env = dict(job_env(), XDG_CONFIG_HOME=str(home))
    install = [sys.executable, "-m", "curate.workflow.slurm_profile"]
    first = subprocess.run(install, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    profile = home / "snakemake" / "slurm" / "config.yaml"
    assert f"installed the SLURM profile at {profile}" in first.stdout, first.stdout + first.stderr
    text = profile.read_text()
    assert text.count("\n  partition: null  #") == 1
    profile.write_text(text.replace("\n  partition: null  #", f"\n  partition: {slurm_cluster['partition']}  #"))
    again = subprocess.run(install, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert f"the SLURM profile at {profile} is up to date" in again.stdout, again.stdout + again.stderr
    return {"env": env, "profile": profile}


def test_the_profile_chooses_squeue_without_accounting(user_config):
    """Snakemake's reading of `--profile slurm` on this cluster: sacct fails here (no slurmdbd),
    so squeue, polled first after min(40, MinJobAge / 3) = 40 s."""
    code = (
        "from snakemake.cli import parse_args; "
        f"_, a = parse_args(['--snakefile', {str(ROOT / 'Snakefile')!r}, '--profile', 'slurm', {TARGET!r}]); "
        "print(a.slurm_status_command, a.slurm_init_seconds_before_status_checks, a.cores, a.executor)"
    )
    if shutil.which("sacct"):  # the premise: this cluster has no accounting
        sacct = subprocess.run(["sacct", "--noheader", "--allocations", "--starttime", "now"], capture_output=True)
        assert sacct.returncode != 0, sacct.stdout
    out = subprocess.run(
        [sys.executable, "-c", code], env=user_config["env"], capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["squeue", "40", "None", "slurm"], out.stdout + out.stderr


@pytest.fixture(scope="module")
def runs(slurm_cluster, user_config, tmp_path_factory):
    slurm_dir = tmp_path_factory.mktemp("slurm_run")
    local_dir = tmp_path_factory.mktemp("local_run")
    slurm_log, local_log = slurm_dir / "snakemake.log", local_dir / "snakemake.log"
    env = user_config["env"]
    # The local reference runs beside the SLURM run: both are single-threaded torch jobs, and on
    # a shared 2-core machine running them side by side keeps the test within its time.
    # This cluster's GPUs are fake (gres without a device): as on any cluster without CUDA, the
    # user says `device: cpu`, else a job that asked for a GPU stops (curate.devices).
    on_cpu = ("--config", "device=cpu")
    local = start(local_dir, local_log, "--cores", "2", *on_cpu, env=env)
    # as a user types it; only --verbose added (the job step logs its environment, where the
    # test reads CUDA_VISIBLE_DEVICES)
    slurm = start(slurm_dir, slurm_log, "--profile", "slurm", "--verbose", *on_cpu, env=env)
    try:
        slurm_text = finish(slurm, slurm_log, "the SLURM run")
    finally:
        if local.poll() is None and slurm.returncode != 0:
            os.killpg(local.pid, signal.SIGKILL)
    local_text = finish(local, local_log, "the local run")
    return {
        "slurm_dir": slurm_dir,
        "slurm_log": slurm_text,
        "local_dir": local_dir,
        "local_log": local_text,
        "partition": slurm_cluster["partition"],
    }


def job_stats(log):
    """{rule: count} from Snakemake's 'Job stats' table."""
    table = log.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    rows = [line.split() for line in table.strip().splitlines()[2:]]
    return {row[0]: int(row[1]) for row in rows if len(row) == 2 and row[0] != "total"}


def submissions(log):
    """Per submitted job: rule, SLURM job id, its SLURM log, its sbatch call."""
    calls = [line for line in log.splitlines() if line.startswith("sbatch call: ")]
    jobs = []
    for _, slurm_id, path in SUBMITTED.findall(log):
        parts = Path(path).parts
        at = next(i for i, part in enumerate(parts) if part.startswith("rule_"))
        rule = parts[at].removeprefix("rule_")
        wildcards = parts[at + 1] if at + 2 < len(parts) else ""
        comment = f"--comment rule_{rule}" + (f"_wildcards_{wildcards}" if wildcards else "") + " "
        call = [line for line in calls if comment in line]
        assert len(call) == 1, (comment, call)
        jobs.append({"rule": rule, "slurm_id": slurm_id, "log": Path(path), "sbatch": call[0]})
    return jobs


def test_every_job_went_through_sbatch(runs):
    stats = job_stats(runs["slurm_log"])
    assert set(stats) == CHAIN, stats
    jobs = submissions(runs["slurm_log"])
    submitted = {}
    for job in jobs:
        submitted[job["rule"]] = submitted.get(job["rule"], 0) + 1
    assert submitted == stats
    assert len({job["slurm_id"] for job in jobs}) == len(jobs)
    for job in jobs:
        # the profile's partition (its site line) and the workflow profile's memory and runtime
        assert f" -p {runs['partition']} " in job["sbatch"], job["sbatch"]
        assert re.search(r" --mem \d+ ", job["sbatch"]) and re.search(r" -t \d+ ", job["sbatch"]), job["sbatch"]
        # slurm-keep-successful-logs: the job's own SLURM log stays, and says it ran its one step
        assert job["log"].is_file(), job["log"]
        assert job["log"].is_relative_to(runs["slurm_dir"] / ".snakemake" / "slurm_logs")
        assert "1 of 1 steps (100%) done" in job["log"].read_text(), job["log"].read_text()[-3000:]
    # the profile's status command, kept by the plugin (--verbose logs each status query)
    assert "Falling back to 'sacct'" not in runs["slurm_log"]
    assert "command=squeue" in runs["slurm_log"] and "command=sacct" not in runs["slurm_log"]


def test_gpu_rules_get_a_gpu_and_cpu_rules_none(runs):
    seen = set()
    for job in submissions(runs["slurm_log"]):
        text = job["log"].read_text()
        visible = re.findall(r"'CUDA_VISIBLE_DEVICES': '([^']*)'", text)
        if job["rule"] in GPU_RULES:
            seen.add(job["rule"])
            assert " --gpus=1" in job["sbatch"], job["sbatch"]
            assert visible and all(re.fullmatch(r"\d+", v) for v in visible), (job["log"], visible)
            assert re.search(r"The call for this job is: srun .*--gpus=1", text), job["log"]
        else:
            assert "--gpus" not in job["sbatch"], job["sbatch"]
            assert not visible, (job["log"], visible)
    assert seen == GPU_RULES


def test_jobs_run_this_virtualenv(runs):
    for job in submissions(runs["slurm_log"]):
        assert f'--wrap="{PYTHON_BIN}/python' in job["sbatch"], job["sbatch"]
        assert re.search(
            rf"The call for this job is: srun .* {re.escape(str(PYTHON_BIN))}/python\S* -m snakemake ",
            job["log"].read_text(),
        ), job["log"]


def test_results_equal_the_local_run(runs):
    slurm, local = runs["slurm_dir"], runs["local_dir"]
    assert (slurm / TARGET).read_bytes() == (local / TARGET).read_bytes()
    scores = sorted((local / "data" / "scores" / POOL / SCORER).glob("*.parquet"))
    assert len(scores) == job_stats(runs["slurm_log"])["score_chunk"]
    for path in scores:
        other = slurm / path.relative_to(local)
        pd.testing.assert_frame_equal(pd.read_parquet(other), pd.read_parquet(path), check_exact=True)
        report = path.with_name(path.name.replace(".parquet", ".report.json"))
        assert json.loads((slurm / report.relative_to(local)).read_text()) == json.loads(report.read_text())
