"""Training that resumes where it stopped (curate.training.resume), and how a training is
launched on one or several nodes (curate.training.launch, curate.training.trainers)."""

import hashlib
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import curate.training.blip as cb
import curate.training.llava as ll
import curate.training.weighted_clip as wc
from curate.data.reshard import reshard
from curate.data.subset import uids_to_u8u8
from curate.registry import ConfigError
from curate.training import launch
from curate.training.resume import CHECKPOINT, Checkpoints, prepare_scratch, rng_state, set_rng_state
from curate.training.trainers import complete_recipe, multi_node_resources, train_rule
from tests.unit.pool_fixtures import uid, write_pool
from tests.unit.test_weighted_clip import TINY

torch.set_num_threads(1)


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Killed(RuntimeError):
    pass


def dies_at(module, name, call, monkeypatch):
    """Make ``module.name`` raise on its ``call``-th call (a job killed in the middle of a step)."""
    original, calls = getattr(module, name), []

    def wrapped(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            raise Killed(f"killed at call {call}")
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapped)
    return lambda: monkeypatch.setattr(module, name, original)


@pytest.fixture
def weighted(tmp_path):
    pool = write_pool(tmp_path / "pool", samples_per_shard=8, n_samples=24)
    weights = {uid(i): (i % 4) / 3 for i in range(24)}
    reshard(
        uids_to_u8u8([uid(i) for i in range(24)]), pool, tmp_path / "reshard", samples_per_shard=10, weights=weights
    )
    return tmp_path / "reshard"


def test_the_scratch_folder_is_kept_for_the_same_inputs_only(tmp_path):
    scratch, kept = prepare_scratch(tmp_path / "s", {"recipe": 1})
    assert not kept
    (scratch / CHECKPOINT).write_text("x")
    assert prepare_scratch(tmp_path / "s", {"recipe": 1}) == (scratch, True)
    assert (scratch / CHECKPOINT).exists()
    _, kept = prepare_scratch(tmp_path / "s", {"recipe": 2})  # another training: nothing of it resumed
    assert not kept and not (scratch / CHECKPOINT).exists()


def test_the_random_state_round_trips_through_a_weights_only_checkpoint(tmp_path):
    torch.manual_seed(3)
    np.random.seed(4)
    state = rng_state()
    expected = (torch.rand(3), np.random.rand(3), __import__("random").random())
    Checkpoints(tmp_path, every=1).save({"rng": state, "epoch": 1})
    loaded = torch.load(tmp_path / CHECKPOINT, weights_only=True)  # what open_clip's export reads
    torch.manual_seed(99)
    set_rng_state(loaded["rng"])
    got = (torch.rand(3), np.random.rand(3), __import__("random").random())
    assert torch.equal(got[0], expected[0]) and np.array_equal(got[1], expected[1]) and got[2] == expected[2]


def test_weighted_clip_killed_mid_epoch_resumes_to_the_uninterrupted_weights(weighted, tmp_path, monkeypatch):
    recipe = dict(TINY, checkpoint_every=2)  # 3 steps an epoch, 2 epochs: checkpoints at steps 2, 3 (epoch), 4
    whole = wc.train_weighted_clip(recipe, weighted, tmp_path / "whole", seed=0)
    scratch = tmp_path / "scratch"
    restore = dies_at(wc, "batch_loss", 6, monkeypatch)  # dies in step 6: the last checkpoint is step 4's
    with pytest.raises(Killed):
        wc.train_weighted_clip(recipe, weighted, tmp_path / "resumed", seed=0, scratch=scratch)
    state = torch.load(scratch / CHECKPOINT, weights_only=False)
    assert (state["epoch"], state["batches_done"], state["step"]) == (1, 1, 4)
    restore()
    resumed = wc.train_weighted_clip(recipe, weighted, tmp_path / "resumed", seed=0, scratch=scratch)
    assert resumed == whole and resumed["steps"] == 6  # the recipe's step count
    name = "open_clip_model.safetensors"
    assert digest(tmp_path / "resumed" / name) == digest(tmp_path / "whole" / name)
    assert not scratch.exists()  # removed once the model is exported


BLIP = {
    "trainer": "blip",
    "library": "transformers",
    "model": "tiny-blip",
    "tokenizer": {"curated_set": "c"},
    "epochs": 2,
    "batch_size": 3,
    "lr": 1e-3,
    "wd": 0.05,
    "lr_decay_rate": 0.85,
    "warmup": 1,
    "shuffle_buffer": 4,
    "arch": {"hidden": 32},
    "checkpoint_every": 3,
}


def test_tiny_blip_killed_mid_run_resumes_to_the_uninterrupted_weights(tmp_path, monkeypatch):
    from tests.unit.test_blip import TEXTS

    pool = write_pool(tmp_path / "pool", samples_per_shard=6, n_samples=12)
    reshard(uids_to_u8u8([uid(i) for i in range(12)]), pool, tmp_path / "reshard")
    whole = cb.train_blip(BLIP, tmp_path / "reshard", tmp_path / "whole", seed=0, tokenizer_texts=TEXTS)
    scratch = tmp_path / "scratch"
    restore = dies_at(cb, "blip_losses", 7, monkeypatch)  # 4 steps an epoch; checkpoints at 3, 4 (epoch), 6
    with pytest.raises(Killed):
        cb.train_blip(BLIP, tmp_path / "reshard", tmp_path / "resumed", seed=0, tokenizer_texts=TEXTS, scratch=scratch)
    assert torch.load(scratch / CHECKPOINT, weights_only=False)["step"] == 6
    restore()
    resumed = cb.train_blip(
        BLIP, tmp_path / "reshard", tmp_path / "resumed", seed=0, tokenizer_texts=TEXTS, scratch=scratch
    )
    assert resumed == whole and resumed["steps"] == 8
    for part in ("retrieval", "captioner"):
        name = f"{part}/model.safetensors"
        assert digest(tmp_path / "resumed" / name) == digest(tmp_path / "whole" / name)


def test_llava_killed_mid_epoch_resumes_to_the_uninterrupted_weights(tmp_path, monkeypatch):
    from tests.unit.test_llava import CAPTIONS, RECIPE

    ll.build_tiny_parts(tmp_path / "parts", CAPTIONS, seed=0, lm_steps=5, hidden=32)
    base = ll.assemble_llava(tmp_path / "parts" / "vision", tmp_path / "parts" / "language_model", tmp_path / "base", 0)
    pool = write_pool(tmp_path / "pool", samples_per_shard=6, n_samples=12)
    reshard(uids_to_u8u8([uid(i) for i in range(12)]), pool, tmp_path / "reshard")
    recipe = dict(RECIPE, checkpoint_every=1)  # one epoch of 3 steps: a checkpoint after each
    whole = ll.train_projector(recipe, tmp_path / "reshard", base, tmp_path / "whole", seed=0)
    scratch = tmp_path / "scratch"
    restore = dies_at(ll, "weighted_caption_loss", 3, monkeypatch)  # dies in the last step
    with pytest.raises(Killed):
        ll.train_projector(recipe, tmp_path / "reshard", base, tmp_path / "resumed", seed=0, scratch=scratch)
    assert torch.load(scratch / CHECKPOINT, weights_only=False)["step"] == 2
    restore()
    resumed = ll.train_projector(recipe, tmp_path / "reshard", base, tmp_path / "resumed", seed=0, scratch=scratch)
    assert resumed == whole and resumed["steps"] == 3
    assert digest(tmp_path / "resumed" / "model.safetensors") == digest(tmp_path / "whole" / "model.safetensors")


# ---------------------------------------------------------------------------------------------
# Launching on one node or several


OPEN_CLIP = {"model": "ViT-B-32", "epochs": 1, "batch_size": 64, "lr": 1e-3, "wd": 0.2, "warmup": 1}
OPEN_CLIP |= {"beta1": 0.9, "beta2": 0.98, "eps": 1e-6, "samples_seen": 64, "device": "cuda"}


def test_one_node_runs_the_entry_or_torchrun_standalone():
    one = complete_recipe(dict(OPEN_CLIP, world_size=1))
    assert launch.training_command(["-m", "m", "--x"], one, environ={}) == [sys.executable, "-m", "m", "--x"]
    eight = complete_recipe(dict(OPEN_CLIP, world_size=8))
    command = launch.training_command(["-m", "m"], eight, environ={})
    assert command == [
        *[sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=8"],
        *["-m", "m", "--"],  # "--": torchrun's own options end there
    ]
    assert train_rule(eight) == "train_clip"


def test_several_nodes_start_one_torchrun_per_node_through_srun():
    recipe = complete_recipe(dict(OPEN_CLIP, world_size=16, nodes=2))
    environ = {"SLURM_JOB_NODELIST": "gpu[3-4]", "SLURM_JOB_ID": "4242"}

    def scontrol(command, **kwargs):
        assert command == ["scontrol", "show", "hostnames", "gpu[3-4]"]
        return SimpleNamespace(stdout="gpu3\ngpu4\n")

    command = launch.training_command(["-m", "curate.training.clip", "--seed", "0"], recipe, environ, scontrol)
    assert command == [
        "srun",
        "--nodes=2",
        "--ntasks=2",
        "--ntasks-per-node=1",
        "--kill-on-bad-exit=1",
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes=2",
        "--nproc_per_node=8",
        "--rdzv_backend=c10d",
        "--rdzv_endpoint=gpu3:12802",  # DataComp's MASTER_ADDR (the first node) and MASTER_PORT
        "--rdzv_id=4242",
        "-m",
        "curate.training.clip",
        "--",
        "--seed",
        "0",
    ]
    assert train_rule(recipe) == "train_clip_nodes"
    assert multi_node_resources(recipe) == {
        "nodes": 2,
        "tasks": 2,
        "mpi": "srun",
        "slurm_extra": "--ntasks-per-node=1 --gpus-per-node=8",
    }
    with pytest.raises(RuntimeError, match="SLURM allocation"):
        launch.training_command(["-m", "m"], recipe, environ={})
    with pytest.raises(RuntimeError, match="holds 1"):
        launch.training_command(["-m", "m"], recipe, environ, lambda *a, **k: SimpleNamespace(stdout="gpu3\n"))


def test_srun_in_a_real_shell_quotes_nothing():
    # the command is an argument list run without a shell
    assert (
        subprocess.list2cmdline(launch.srun_prefix(3))
        == "srun --nodes=3 --ntasks=3 --ntasks-per-node=1 --kill-on-bad-exit=1"
    )


@pytest.mark.parametrize(
    "recipe, message",
    [
        # curate's own loops run one process (main's check, which names world_size)
        (dict(TINY, nodes=2, world_size=2, device="cuda"), r"world_size: .*runs one process"),
        (dict(OPEN_CLIP, nodes=2, world_size=3), r"nodes: .*does not split evenly"),
        (dict(OPEN_CLIP, nodes=2, world_size=2, device="cpu"), r"nodes: .*need device: cuda"),
    ],
)
def test_nodes_config_errors_name_the_key(recipe, message):
    from curate.training.trainers import TRAINERS

    entry = complete_recipe(recipe, "recipes.r")
    with pytest.raises(ConfigError, match=rf"recipes\.r\.{message}"):
        TRAINERS.of(entry).check({}, "recipes.r", entry)


# ---------------------------------------------------------------------------------------------
# LAVIS's BLIP (train_blip_lavis): the run lives in the scratch folder and resumes from its latest
# epoch. LAVIS runs in its own env (.venv-lavis); here a stand-in interpreter does what LAVIS's
# runner does with the run config: a checkpoint_<epoch>.pth after each epoch, and with
# resume_ckpt_path the epochs after the checkpoint's.

FAKE_LAVIS = """
import json, os, signal, sys
from pathlib import Path
import yaml
args = sys.argv[1:]
run = yaml.safe_load(open(args[args.index("--cfg-path") + 1]))["run"]
out = Path(run["output_dir"])
start = 0
if run["resume_ckpt_path"]:
    start = json.loads(Path(run["resume_ckpt_path"]).read_text())["epoch"] + 1
with open(os.environ["FAKE_LAVIS_STARTS"], "a") as f:
    f.write(f"{start}\\n")
(out / "arch.json").write_text("{}")
(out / "tokenizer").mkdir(exist_ok=True)
(out / "train").mkdir(exist_ok=True)
for epoch in range(start, run["max_epoch"]):
    (out / "train" / f"checkpoint_{epoch}.pth").write_text(json.dumps({"epoch": epoch, "lr": run["init_lr"]}))
    if os.environ.get("FAKE_LAVIS_KILL_AFTER") == str(epoch):
        os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_lavis_training_killed_after_an_epoch_goes_on_from_it(tmp_path, monkeypatch):
    from curate.training.lavis_config import latest_checkpoint, train_lavis
    from curate.workflow.config import load_config

    stub = tmp_path / "fake_lavis.py"
    stub.write_text(FAKE_LAVIS)
    python = tmp_path / "python"
    python.write_text(f'#!/bin/sh\nexec {sys.executable} {stub} "$@"\n')
    python.chmod(0o755)
    recipe = dict(
        load_config()["recipes"]["mos-blip"], device="cpu", world_size=1, nodes=1, batch_size=8, queue_size=16
    )
    recipe["epochs"] = 3
    reshard_dir = tmp_path / "reshard"
    reshard_dir.mkdir()
    (reshard_dir / "meta.json").write_text("{}")
    (reshard_dir / "000000.tar").write_bytes(b"x" * 10)
    (tmp_path / "deit.pth").write_bytes(b"v")
    (tmp_path / "bert").mkdir()
    starts, scratch, model = tmp_path / "starts.txt", tmp_path / "scratch", tmp_path / "model"
    monkeypatch.setenv("FAKE_LAVIS_STARTS", str(starts))

    def train(recipe, model=model):
        return train_lavis(
            recipe,
            reshard_dir,
            model,
            scratch,
            tmp_path / "deit.pth",
            tmp_path / "bert",
            str(python),
            2,
            tmp_path / "log",
        )

    monkeypatch.setenv("FAKE_LAVIS_KILL_AFTER", "0")
    with pytest.raises(subprocess.CalledProcessError) as killed:
        train(recipe)
    assert killed.value.returncode == -9
    assert latest_checkpoint(scratch / "lavis").name == "checkpoint_0.pth"
    monkeypatch.delenv("FAKE_LAVIS_KILL_AFTER")
    last = train(recipe)  # the retry: epochs 1 and 2 only
    assert starts.read_text().split() == ["0", "1"]
    assert last == model / "train" / "checkpoint_2.pth"
    assert sorted(p.name for p in (model / "train").iterdir()) == [f"checkpoint_{e}.pth" for e in range(3)]
    assert (model / "arch.json").is_file() and (model / "tokenizer").is_dir() and not scratch.exists()

    # a scratch folder left by another training (the recipe changed) is not resumed
    starts.unlink()
    monkeypatch.setenv("FAKE_LAVIS_KILL_AFTER", "1")
    with pytest.raises(subprocess.CalledProcessError):
        train(recipe, tmp_path / "model2")
    monkeypatch.delenv("FAKE_LAVIS_KILL_AFTER")
    train(dict(recipe, lr=1e-4), tmp_path / "model2")
    assert starts.read_text().split() == ["0", "0"]


def test_the_latest_lavis_checkpoint_is_the_highest_epoch(tmp_path):
    from curate.training.lavis_config import latest_checkpoint

    assert latest_checkpoint(tmp_path) is None
    (tmp_path / "train").mkdir()
    for epoch in (2, 10, 9):
        (tmp_path / "train" / f"checkpoint_{epoch}.pth").write_bytes(b"")
    (tmp_path / "train" / "checkpoint_best.pth").write_bytes(b"")
    assert latest_checkpoint(tmp_path).name == "checkpoint_10.pth"
