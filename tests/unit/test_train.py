import os
import random
import re

import numpy as np
import pytest
import torch
import webdataset as wds
from PIL import Image, ImageDraw

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(1)

from curate.scoring.clip import CONFIG_NAME, WEIGHTS_NAME, encode, load_model  # noqa: E402
from curate.training.clip import check_train_data, clip_train_argv, samples_per_epoch, train_clip  # noqa: E402

COLOURS = {"red": (220, 30, 30), "blue": (30, 60, 220)}
SHAPES = ("square", "circle")

RECIPE = dict(
    model="tiny-vit-narrow",
    epochs=2,
    batch_size=64,
    lr=5e-3,
    wd=0.1,
    warmup=4,
    beta1=0.9,
    beta2=0.98,
    eps=1e-6,
    samples_seen=1536,
    precision="fp32",
    device="cpu",
    resampled=True,
    log_every_n_steps=1,
)


def scene(rng, colour, shape):
    im = Image.new("RGB", (64, 64), tuple(rng.randint(0, 70) for _ in range(3)))
    x, y, s = rng.randint(0, 28), rng.randint(0, 28), rng.randint(18, 34)
    draw = ImageDraw.Draw(im)
    (draw.rectangle if shape == "square" else draw.ellipse)([x, y, x + s, y + s], fill=COLOURS[colour])
    return im


def write_shards(folder, n, seed, per_shard):
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for shard in range((n + per_shard - 1) // per_shard):
        path = folder / f"curated-{shard:06d}.tar"
        with wds.TarWriter(str(path)) as sink:
            for i in range(shard * per_shard, min(n, (shard + 1) * per_shard)):
                colour, shape = rng.choice(sorted(COLOURS)), rng.choice(SHAPES)
                sink.write({"__key__": f"{i:08d}", "jpg": scene(rng, colour, shape), "txt": f"a {colour} {shape}"})
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    write_shards(root / "data", 320, seed=0, per_shard=80)
    data = os.path.relpath(root / "data", os.getcwd()) + "/curated-{000000..000003}.tar"  # relative, as Snakemake gives
    runs = {}
    for name, seed in (("a", 3), ("b", 3)):
        log = root / f"{name}.log"
        runs[name] = (train_clip(RECIPE, data, 320, root / name, seed=seed, log_path=log), log)
    return root, runs


def test_clip_train_argv_recipe_keys(tmp_path):
    argv = clip_train_argv(RECIPE, "d/curated-{000000..000003}.tar", 320, tmp_path, "run", seed=7, workers=0)
    opts = dict(zip(argv[::2], argv[1::2]))
    assert argv[:2] == ["--model", "tiny-vit-narrow"]
    assert opts["--train-num-samples"] == "768"  # samples_seen / epochs when resampled
    assert opts["--epochs"] == "2" and opts["--batch-size"] == "64" and opts["--seed"] == "7"
    assert opts["--precision"] == "fp32" and opts["--device"] == "cpu" and opts["--name"] == "run"
    assert opts["--beta2"] == "0.98" and opts["--eps"] == "1e-06" and opts["--warmup"] == "4"
    assert "--dataset-resampled" in argv

    once = dict(RECIPE, resampled=False, samples_seen=None)
    argv = clip_train_argv(once, "a.tar::b.tar", 320, tmp_path, "run", seed=0)
    assert "--dataset-resampled" not in argv
    assert argv[argv.index("--train-num-samples") + 1] == "320"
    assert samples_per_epoch(dict(once, samples_seen=640), 320) == 320
    with pytest.raises(ValueError, match="samples_seen"):
        samples_per_epoch(dict(once, samples_seen=1000), 320)
    with pytest.raises(ValueError, match="needs samples_seen"):
        samples_per_epoch(dict(RECIPE, samples_seen=None), 320)
    with pytest.raises(ValueError, match=r"recipe\.epochs: required"):
        clip_train_argv({"model": "tiny-vit"}, "a.tar", 1, tmp_path, "run", seed=0)
    with pytest.raises(ValueError, match=r"recipe\.lr_typo: not a parameter of trainer 'open_clip'"):
        clip_train_argv(dict(RECIPE, lr_typo=1), "a.tar", 1, tmp_path, "run", seed=0)
    with pytest.raises(ValueError, match="divisible"):
        clip_train_argv(dict(RECIPE, world_size=3), "a.tar", 1, tmp_path, "run", seed=0)
    argv = clip_train_argv(
        dict(RECIPE, world_size=2, grad_clip_norm=1.0, extra_args=["--local-loss"]), "a.tar", 1, tmp_path, "run", seed=0
    )
    assert argv[argv.index("--batch-size") + 1] == "32"
    assert argv[-1] == "--local-loss" and "--grad-clip-norm" in argv


@pytest.mark.slow
def test_train_clip_makes_a_model_folder_that_learned(trained):
    root, runs = trained
    out, log = runs["a"]
    assert sorted(p.name for p in out.iterdir()) == sorted([CONFIG_NAME, WEIGHTS_NAME, "train_params.txt"])

    # the loss (per step, open_clip's log) goes down
    losses = [float(x) for x in re.findall(r"Contrastive_loss: ([0-9.]+) \(", log.read_text())]
    assert len(losses) >= 10
    assert np.mean(losses[-4:]) < np.mean(losses[:4]) - 0.3, losses

    # zero-shot colour classification of held-out scenes beats chance by far
    model, preprocess, tokenizer = load_model(f"local-dir:{out}")
    rng = random.Random(123)
    truth = [rng.choice(sorted(COLOURS)) for _ in range(40)]
    ims = [scene(rng, c, rng.choice(SHAPES)) for c in truth]
    prompts = [f"a {c} square" for c in sorted(COLOURS)]
    img, txt = encode(model, preprocess, tokenizer, ims, prompts, batch_size=64)
    pred = [sorted(COLOURS)[i] for i in (img @ txt.T).argmax(axis=1)]
    accuracy = np.mean([p == t for p, t in zip(pred, truth)])
    print(f"held-out colour accuracy {accuracy:.3f}")
    assert accuracy >= 0.85, accuracy


@pytest.mark.slow
def test_train_clip_is_deterministic_given_the_seed(trained):
    _, runs = trained
    a = (runs["a"][0] / WEIGHTS_NAME).read_bytes()
    b = (runs["b"][0] / WEIGHTS_NAME).read_bytes()
    assert a == b


def test_bad_training_data_fails_before_training(tmp_path):
    paths = write_shards(tmp_path / "data", 4, seed=0, per_shard=2)
    assert check_train_data(str(tmp_path / "data" / "curated-{000000..000001}.tar")) == [str(p) for p in paths]
    assert check_train_data("::".join(str(p) for p in paths)) == [str(p) for p in paths]
    with pytest.raises(FileNotFoundError, match="curated-000002.tar"):
        train_clip(
            RECIPE,
            str(tmp_path / "data" / "curated-{000000..000002}.tar"),
            4,
            tmp_path / "m",
            seed=0,
            log_path=tmp_path / "fail.log",
        )
    no_caption = tmp_path / "no-caption.tar"
    with wds.TarWriter(str(no_caption)) as sink:
        sink.write({"__key__": "0", "jpg": scene(random.Random(0), "red", "square")})
    with pytest.raises(ValueError, match="no image \\+ txt pair"):
        check_train_data(str(no_caption))


@pytest.mark.slow
def test_train_clip_failure_raises_with_log_tail(tmp_path):
    data = write_shards(tmp_path / "data", 4, seed=0, per_shard=4)[0]
    with pytest.raises(RuntimeError, match="(?s)open_clip_train failed.*--no-such-option"):
        train_clip(
            dict(RECIPE, extra_args=["--no-such-option"]),
            str(data),
            4,
            tmp_path / "m",
            seed=0,
            log_path=tmp_path / "fail.log",
        )
    assert "[curate.training.clip]" in (tmp_path / "fail.log").read_text()


def test_multi_gpu_recipes_start_one_process_per_gpu_through_torchrun():
    import sys

    from curate.training.clip import train_command

    assert train_command(["--seed", "0"]) == [sys.executable, "-m", "curate.training.clip", "--seed", "0"]
    cmd = train_command(["--seed", "0"], world_size=8)
    assert cmd[:5] == [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=8"]
    assert cmd[5:] == ["-m", "curate.training.clip", "--", "--seed", "0"]


def test_torchrun_hands_open_clip_train_its_arguments_unread():
    """torchrun's parser reads an unknown --logs as its own --logs-specs (an abbreviation); the
    rehearsal's first 2-process training stopped on it."""
    from open_clip_train.params import parse_args
    from torch.distributed.run import get_args_parser

    from curate.training.clip import clip_train_argv, train_command

    recipe = {
        "model": "ViT-B-32",
        "samples_seen": 64,
        "epochs": 1,
        "batch_size": 8,
        "lr": 5e-4,
        "wd": 0.2,
        "warmup": 5,
        "beta1": 0.9,
        "beta2": 0.98,
        "eps": 1e-6,
        "world_size": 2,
        "device": "cpu",
    }
    argv = clip_train_argv(recipe, "d/00000000.tar", 64, "d/logs", "run", seed=3)
    assert "--logs" in argv
    torchrun = get_args_parser().parse_args(train_command(argv, world_size=2)[3:])
    assert torchrun.module and torchrun.training_script == "curate.training.clip"
    handed = torchrun.training_script_args
    handed = handed[1:] if handed[:1] == ["--"] else handed  # as the entry point drops it
    assert handed == argv and parse_args(handed).logs == "d/logs"
    with pytest.raises(ValueError, match="world_size"):
        train_command([], world_size=0)


KILL_PLUGIN = '''
"""Kill the training process (SIGKILL) when its epoch 1 starts, once: epoch 0's checkpoint is saved."""
import os
import signal
from pathlib import Path

import open_clip_train.main as ocm

_train = ocm.train_one_epoch


def train_one_epoch(*args, **kwargs):
    mark = Path(os.environ["CURATE_KILL_MARK"])
    if args[3] == 1 and not mark.exists():
        mark.write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return _train(*args, **kwargs)


ocm.train_one_epoch = train_one_epoch
'''


@pytest.mark.slow
def test_a_training_killed_after_an_epoch_resumes_from_its_checkpoint_to_the_same_weights(
    trained, tmp_path, monkeypatch
):
    """open_clip_train with DataComp's --save-most-recent --resume latest: the scratch folder
    survives the failed attempt, the rerun goes on from epoch_latest.pt with the saved random
    state and ends with the weights of the uninterrupted run."""
    root, runs = trained
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "kill_after_epoch_0.py").write_text(KILL_PLUGIN)
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(tmp_path / "plugins"), os.environ.get("PYTHONPATH")]))
    )
    monkeypatch.setenv("CURATE_KILL_MARK", str(tmp_path / "killed"))
    data = str(root / "data") + "/curated-{000000..000003}.tar"
    scratch, log = tmp_path / "scratch", tmp_path / "train.log"
    kwargs = dict(seed=3, log_path=log, scratch=scratch, plugins=["kill_after_epoch_0"])
    with pytest.raises(RuntimeError, match="exit status -9"):
        train_clip(RECIPE, data, 320, tmp_path / "model", **kwargs)
    assert (scratch / "logs" / "run" / "checkpoints" / "epoch_latest.pt").is_file()
    train_clip(RECIPE, data, 320, tmp_path / "model", **kwargs)
    text = log.read_text()
    assert "open_clip_train resumes from it" in text and "(epoch 1)" in text
    resumed = text[text.index("resumes from it") :]
    assert "Train Epoch: 0" not in resumed and "Train Epoch: 1" in resumed  # only what was left
    assert (tmp_path / "model" / WEIGHTS_NAME).read_bytes() == (runs["a"][0] / WEIGHTS_NAME).read_bytes()
    assert not scratch.exists()


def test_cpu_processes_wrap_the_model_in_ddp_as_open_clip_train_asks(tmp_path, monkeypatch):
    """open_clip_train calls DistributedDataParallel(model, device_ids=[device]); on CPU torch
    refuses device ids, so the entry point's DDP leaves them out there (the rehearsal's 2-process
    trainings stopped on it)."""
    import torch
    import torch.distributed as dist

    from curate.training.clip import _cpu_ddp

    monkeypatch.setattr(torch.nn.parallel, "DistributedDataParallel", torch.nn.parallel.DistributedDataParallel)
    original = torch.nn.parallel.DistributedDataParallel
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        with pytest.raises(ValueError, match="device_ids"):
            original(torch.nn.Linear(2, 2), device_ids=[torch.device("cpu")])
        _cpu_ddp()
        model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(2, 2), device_ids=[torch.device("cpu")])
        assert model(torch.ones(1, 2)).shape == (1, 2) and model.device_ids is None
    finally:
        dist.destroy_process_group()
