"""The two profiles, as Snakemake reads them.

profiles/default is the workflow profile, loaded on every run: every rule's memory and runtime,
GPUs where a rule computes on one, and nothing about a machine. profiles/slurm is the named
profile `slurm` that setup.sh installs where Snakemake looks names up (curate.workflow.slurm_profile):
the executor, its status query and the two site settings, and no per-rule resources (the workflow
profile's would override them). The effective settings of `snakemake --profile slurm` come from
Snakemake's own parser (snakemake.cli.parse_args)."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from snakemake.cli import get_profile_dir, parse_args

from curate.training.trainers import training_gpus
from curate.workflow import slurm_profile
from tests.unit.registry_fixtures import recipe as complete_recipe

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW_PROFILE = yaml.safe_load((ROOT / "profiles" / "default" / "config.yaml").read_text())
SLURM_SOURCE = ROOT / "profiles" / "slurm" / "config.yaml"
SLURM_PROFILE = yaml.safe_load(SLURM_SOURCE.read_text())
SWITCHES = {"rerun-incomplete", "printshellcmds", "show-failed-logs"}

#: Rules whose models run on a GPU (a training rule's GPUs come from its recipe instead).
GPU_RULES = {
    "score_chunk",
    "evaluate_model",
    "evaluate_scorer",
    "evaluate_llava",
    "caption_chunk",
    "sieve_score_chunk",
    "embed_curated_set",
    "embed_dataset",
    "train_mixer",
    "itm_score_chunk",
    "embed_chunk",  # an image encoder (DBP's DINOv2)
    "hype_score_chunk",  # HYPE's hyperbolic CLIP
    "score_group_chunk",
    "itm_score_group_chunk",
    "evaluate_blip",
}
TRAINING_RULES = {"train_scorer", "train_clip", "train_weighted_clip", "train_llava", "train_blip", "train_blip_lavis"}
#: The training rules of recipes on several nodes (nodes, tasks and GPUs per node from the recipe).
MULTI_NODE_RULES = {"train_clip_nodes", "train_blip_lavis_nodes"}


def rules():
    """Every rule of the workflow, those made with `use rule ... as <name> with:` included."""
    return {
        name
        for smk in (ROOT / "rules").glob("*.smk")
        for pair in re.findall(r"^\s*(?:rule (\w+):|use rule \w+ as (\w+))", smk.read_text(), re.M)
        for name in pair
        if name
    }


# ------------------------------------------------------------------ the workflow profile


def test_every_rule_has_memory_and_runtime_in_the_workflow_profile_and_no_entry_is_stale():
    resources = WORKFLOW_PROFILE["set-resources"]
    assert set(resources) == rules()
    for rule, entry in resources.items():
        assert "mem_mb" in entry and "runtime" in entry, rule


def test_gpus_go_to_the_rules_that_compute_on_one():
    resources = WORKFLOW_PROFILE["set-resources"]
    assert GPU_RULES | TRAINING_RULES <= rules()
    assert {rule for rule, entry in resources.items() if entry.get("gpu")} == GPU_RULES


def test_the_workflow_profile_holds_nothing_about_a_machine():
    # no cores, executor, partition; and no default-resources: it would replace the named
    # profile's, the partition and account with them
    assert set(WORKFLOW_PROFILE) == SWITCHES | {"set-resources"}
    site = {"slurm_partition", "slurm_account", "slurm_extra", "gpu_model"}
    assert not any(site & set(entry) for entry in WORKFLOW_PROFILE["set-resources"].values())


def test_the_named_profile_holds_no_per_rule_resources():
    # in a --profile these are dropped whole when the workflow profile has them
    assert not {"set-resources", "set-threads", "cores", "resources"} & set(SLURM_PROFILE)
    assert not SWITCHES & set(SLURM_PROFILE)


def test_training_rules_ask_for_their_recipes_gpus():
    for smk in ("train.smk", "llava.smk", "blip.smk", "resources.smk"):
        text = (ROOT / "rules" / smk).read_text()
        for block in re.split(r"^rule ", text, flags=re.M)[1:]:
            if block.split(":", 1)[0] in TRAINING_RULES:
                assert re.search(r"resources:\s*\n\s+gpu=get_(scorer_)?training_gpus,", block), block[:200]


def test_multi_node_training_rules_ask_for_nodes_one_task_each_and_gpus_per_node():
    """The rules of recipes with nodes > 1 replace the GPU count by the allocation's shape and run
    without the executor's srun (mpi), so that the job's own srun reaches every node."""
    assert MULTI_NODE_RULES <= rules()
    for smk in ("train.smk", "blip.smk"):
        text = (ROOT / "rules" / smk).read_text()
        for block in re.split(r"^use rule ", text, flags=re.M)[1:]:
            block = re.split(r"^rule ", block, flags=re.M)[0]
            name = block.split(" as ", 1)[1].split(" ", 1)[0]
            assert name in MULTI_NODE_RULES
            resources = block[block.index("resources:") :]
            assert "gpu=" not in resources  # the plugin would ask --gpus for the whole job
            for line in ("nodes=get_training_nodes,", "tasks=get_training_nodes,", 'mpi="srun",'):
                assert line in resources, name
            assert "slurm_extra=get_training_node_extra," in resources


def test_the_named_profile_requeues_preempted_jobs():
    assert SLURM_PROFILE["slurm-requeue"] is True


@pytest.mark.parametrize(
    "recipe, gpus",
    [
        ({}, 0),  # CPU by default
        ({"device": "cpu", "world_size": 4}, 0),
        ({"device": "cuda"}, 1),
        ({"device": "cuda", "world_size": 8}, 8),
    ],
)
def test_training_gpus(recipe, gpus):
    base = {
        "model": "ViT-B-32",
        "epochs": 1,
        "batch_size": 8,
        "lr": 1e-3,
        "wd": 0.1,
        "warmup": 0,
        "beta1": 0.9,
        "beta2": 0.98,
        "eps": 1e-6,
        "samples_seen": 80,
    }
    assert training_gpus(complete_recipe(**base, **recipe)) == gpus


def test_the_configured_recipes_ask_for_what_they_run_on(config):
    recipes = config["recipes"]
    assert training_gpus(recipes["datacomp-medium"]) == recipes["datacomp-medium"]["world_size"] == 8
    assert training_gpus(recipes["tiny-clip"]) == 0 and training_gpus(recipes["mos-llava"]) == 1
    assert training_gpus(recipes["tiny-mos-blip"]) == 0 and training_gpus(recipes["mos-blip"]) == 14


# ------------------------------------------------------------------ `--profile slurm`, parsed


def fake_command(folder: Path, name: str, output: str = "", status: int = 0):
    """A stand-in SLURM command on PATH: prints `output`, exits with `status`."""
    path = folder / name
    path.write_text(f"#!/bin/sh\ncat <<'END'\n{output}\nEND\nexit {status}\n")
    path.chmod(0o755)


@pytest.fixture
def user_config(tmp_path, monkeypatch):
    """A user's config dir (XDG_CONFIG_HOME) with the profile installed as setup.sh installs it,
    a working directory, and fake sacct/scontrol in front of PATH."""
    home = tmp_path / "xdg"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    outcome = slurm_profile.install()
    assert outcome.action == "installed"
    return {"profile": home / "snakemake" / "slurm" / "config.yaml", "bin": bin_dir}


def no_accounting(bin_dir, min_job_age="300 sec"):
    fake_command(bin_dir, "sacct", "sacct: error: Slurm accounting storage is disabled", status=1)
    fake_command(bin_dir, "scontrol", f"Configuration data as of now\nMinJobAge               = {min_job_age}\n")


def parse(*argv):
    """Snakemake's own reading of a command line (from `snakemake ` on), run from the checkout's
    Snakefile so that profiles/default is the workflow profile."""
    _, args = parse_args(["--snakefile", str(ROOT / "Snakefile"), *argv])
    return args


def value(resource):
    """A string resource as the jobs see it (the profile writes Python literals)."""
    return eval(resource.raw)


def test_the_profile_name_resolves_to_the_installed_copy(user_config):
    assert get_profile_dir("slurm")[1] == user_config["profile"]
    assert user_config["profile"] == slurm_profile.user_profile_dir() / "config.yaml"


def test_profile_slurm_as_typed(user_config):
    no_accounting(user_config["bin"])
    args = parse("--profile", "slurm", "results/table2.csv")
    assert args.executor == "slurm" and args.cores is None  # every job: --cores all
    assert args.jobs == 100 and args.retries == 2 and args.keep_going
    assert args.targets == ["results/table2.csv"]
    assert args.rerun_incomplete and args.printshellcmds and args.show_failed_logs
    # the workflow profile's resources, every rule of them, reach the cluster run
    assert set(args.set_resources) == set(WORKFLOW_PROFILE["set-resources"])
    for rule, entry in WORKFLOW_PROFILE["set-resources"].items():
        assert {name: resource.raw for name, resource in args.set_resources[rule].items()} == entry, rule
    # site lines unset: no partition, no account
    assert "slurm_partition" not in args.default_resources and "slurm_account" not in args.default_resources


def test_the_site_lines_set_partition_and_account(user_config):
    no_accounting(user_config["bin"])
    path = user_config["profile"]
    text = path.read_text()
    text = re.sub(r"^  partition: null", "  partition: gpu", text, flags=re.M)
    path.write_text(re.sub(r"^  account: null", "  account: 123456", text, flags=re.M))
    args = parse("--profile", "slurm", "results/table2.csv")
    assert value(args.default_resources["slurm_partition"]) == "gpu"
    assert value(args.default_resources["slurm_account"]) == "123456"
    assert args.executor == "slurm" and args.cores is None and len(args.set_resources) == len(rules())


@pytest.mark.parametrize(
    "sacct_status, min_job_age, command, first_poll",
    [
        (0, "300 sec", "sacct", 40),  # accounting answers: sacct
        (1, "300 sec", "squeue", 40),  # no accounting: squeue, polled after 40 s <= 300 / 3
        (1, "60 sec", "squeue", 20),  # a short MinJobAge: poll within a third of it
        (1, None, "squeue", 40),  # scontrol fails: the plugin's default first poll
    ],
)
def test_the_status_command_follows_whether_accounting_answers(
    user_config, sacct_status, min_job_age, command, first_poll
):
    fake_command(
        user_config["bin"], "sacct", "" if sacct_status == 0 else "accounting storage is disabled", sacct_status
    )
    if min_job_age is None:
        fake_command(user_config["bin"], "scontrol", "slurm_load_ctl_conf error", status=1)
    else:
        fake_command(user_config["bin"], "scontrol", f"MinJobAge               = {min_job_age}")
    args = parse("--profile", "slurm", "results/table2.csv")
    assert args.slurm_status_command == command
    assert args.slurm_init_seconds_before_status_checks == first_poll


def test_a_local_run_names_its_cores_and_gets_the_workflow_profile_only(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "empty"))
    monkeypatch.chdir(tmp_path)
    args = parse("--cores", "2")
    assert args.cores == 2 and args.executor is None
    assert set(args.set_resources) == rules() and args.rerun_incomplete


def test_set_resources_come_whole_from_one_place(tmp_path, monkeypatch):
    # why the docs say: change a rule's resources in profiles/default (or a copy passed with
    # --workflow-profile), neither with --set-resources nor in a --profile
    monkeypatch.chdir(tmp_path)
    args = parse("--cores", "2", "--set-resources", "train_clip:mem_mb=9")
    assert set(args.set_resources) == {"train_clip"}  # every other rule's resources gone
    other = tmp_path / "other" / "config.yaml"
    other.parent.mkdir()
    other.write_text("set-resources:\n  train_clip:\n    mem_mb: 9\n")
    args = parse("--cores", "2", "--profile", str(other.parent))
    assert args.set_resources["train_clip"]["mem_mb"].raw == WORKFLOW_PROFILE["set-resources"]["train_clip"]["mem_mb"]
    args = parse("--cores", "2", "--workflow-profile", str(other.parent))
    assert set(args.set_resources) == {"train_clip"} and args.set_resources["train_clip"]["mem_mb"].raw == 9


# ------------------------------------------------------------------ the installer


def a_new_version(tmp_path, extra="jobs: 50\n"):
    source = tmp_path / "new" / "config.yaml"
    source.parent.mkdir(exist_ok=True)
    source.write_text(SLURM_SOURCE.read_text().replace("jobs: 100\n", extra))
    return source


def set_site(path, partition="gpu", account="myproject"):
    text = re.sub(r"^  partition: null.*$", f"  partition: {partition}  # ours", path.read_text(), flags=re.M)
    path.write_text(re.sub(r"^  account: null.*$", f"  account: {account}", text, flags=re.M))


def test_install_then_nothing_to_do(tmp_path):
    target = tmp_path / "slurm"
    first = slurm_profile.install(SLURM_SOURCE, target)
    assert first.action == "installed" and "partition and account unset" in first.message
    assert (target / "config.yaml").read_text() == SLURM_SOURCE.read_text()
    assert slurm_profile.install(SLURM_SOURCE, target).action == "current"


def test_site_edits_are_kept_and_the_rest_follows_a_new_version(tmp_path):
    target = tmp_path / "slurm"
    slurm_profile.install(SLURM_SOURCE, target)
    set_site(target / "config.yaml")
    assert slurm_profile.install(SLURM_SOURCE, target).action == "current"  # site edits only
    edited = (target / "config.yaml").read_text()
    outcome = slurm_profile.install(a_new_version(tmp_path), target)
    assert outcome.action == "updated" and "unset" not in outcome.message
    text = (target / "config.yaml").read_text()
    assert "jobs: 50\n" in text and "jobs: 100\n" not in text
    assert slurm_profile.site_lines(text) == slurm_profile.site_lines(edited)
    assert slurm_profile.site_values(text) == {"partition": "gpu", "account": "myproject"}
    # and again from there: what it wrote is what it stamped
    assert slurm_profile.install(a_new_version(tmp_path, "jobs: 20\n"), target).action == "updated"


def test_a_copy_edited_beyond_the_site_lines_is_left_alone(tmp_path):
    target = tmp_path / "slurm"
    slurm_profile.install(SLURM_SOURCE, target)
    path = target / "config.yaml"
    set_site(path)
    path.write_text(path.read_text().replace("jobs: 100", "jobs: 500"))
    before = path.read_text()
    outcome = slurm_profile.install(a_new_version(tmp_path), target)
    assert outcome.action == "kept" and "diff " in outcome.message
    assert path.read_text() == before


@pytest.mark.parametrize("name", ["config.yaml", "profile.yaml"])
def test_a_profile_setup_did_not_install_is_left_alone(tmp_path, name):
    target = tmp_path / "slurm"
    target.mkdir()
    (target / name).write_text("executor: slurm\njobs: 3\n")
    outcome = slurm_profile.install(SLURM_SOURCE, target)
    assert outcome.action == "kept"
    assert (target / name).read_text() == "executor: slurm\njobs: 3\n"
    assert not (target / slurm_profile.STAMP).exists()


def test_setup_sh_installs_the_profile(tmp_path):
    """setup.sh, run as a user runs it (here with a .venv already up to date), installs the
    profile into the user's config dir and says what it did; a second run changes nothing."""
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    for name in ("setup.sh", "requirements.lock", "pyproject.toml"):
        shutil.copy(ROOT / name, checkout / name)
    for name in ("curate", "profiles"):
        (checkout / name).symlink_to(ROOT / name)
    venv_bin = checkout / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    # this interpreter, except that it refuses pip: the test must never install into a real venv
    guard = '[ "$1 $2" = "-m pip" ] && { echo "setup.sh reached pip" >&2; exit 99; }'
    (venv_bin / "python").write_text(f'#!/bin/sh\n{guard}\nexec "{sys.executable}" "$@"\n')
    (venv_bin / "python").chmod(0o755)
    wanted = subprocess.run(
        "cat requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1",
        shell=True,
        cwd=checkout,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    (checkout / ".venv" / ".requirements.sha256").write_text(wanted)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HOME=str(tmp_path / "home"), XDG_CONFIG_HOME="")  # unset: ~/.config
    runs = [subprocess.run(["bash", "setup.sh"], cwd=checkout, env=env, capture_output=True, text=True) for _ in "ab"]
    for run in runs:
        assert run.returncode == 0, run.stdout + run.stderr
    installed = tmp_path / "home" / ".config" / "snakemake" / "slurm" / "config.yaml"
    assert installed.read_text() == SLURM_SOURCE.read_text()
    assert "setup: .venv is up to date" in runs[0].stdout
    assert f"setup: installed the SLURM profile at {installed}" in runs[0].stdout
    assert f"setup: the SLURM profile at {installed} is up to date" in runs[1].stdout


# ------------------------------------------------------------------ the documented commands


DOCS = [ROOT / "README.md", ROOT / "cluster" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_the_docs_give_the_commands_that_work():
    readme = (ROOT / "README.md").read_text()
    assert "./setup.sh && .venv/bin/snakemake --cores 2\n" in readme
    assert "./setup.sh && .venv/bin/python -m pytest\n" in readme
    assert ".venv/bin/snakemake --profile slurm" in readme
    assert "./setup.sh && .venv/bin/python -m pytest" in (ROOT / ".ci" / "run").read_text()
    for path in [*DOCS, *(ROOT / "tests").rglob("*.py"), *(ROOT / "profiles").rglob("*.yaml")]:
        text = path.read_text()
        if path == Path(__file__):
            continue
        for stale in (
            "--profile profiles/",
            "--workflow-profile none",
            "--slurm-status-command",
            "CURATE_SLURM_ACCOUNT",
        ):
            assert stale not in text, f"{path.relative_to(ROOT)}: {stale}"
        # on a command line it would replace the workflow profile's whole set-resources
        assert not re.search(r"^\s*[^#\n]*snakemake [^\n]*--set-resources", text, re.M), path
