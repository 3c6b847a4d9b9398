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
    assert command == [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=8", "-m", "m"]
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
