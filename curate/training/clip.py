"""Train a CLIP model with open_clip_train on webdataset shards, export it as a model folder.

`train_clip` runs open_clip_train's own ``main`` in a subprocess (``python -m curate.training.clip
<open_clip_train arguments>``): this module's ``__main__`` only makes open_clip_train's data order
depend on ``--seed`` alone and then calls ``open_clip_train.main.main`` unchanged. Two things in
open_clip_train 3.3 / webdataset 0.2.86 otherwise break "same seed, same data -> same weights":

- the per-sample shuffle buffer (``wds.shuffle(5000, 1000)`` in ``get_wds_dataset``) gets no rng,
  so webdataset seeds it from ``os.getpid() + time.time()``: every run reads the samples in a
  different order. We give it ``random.Random`` seeded from (--seed, rank, worker, epoch).
- with ``--dataset-resampled`` and ``--workers 0`` the shard sampler's seed is ``rank*1000 +
  epoch``, the same for every ``--seed``. We add --seed to it (with workers > 0 the worker seed
  already derives from --seed through torch's generator).

Model init, augmentation (torch RNG) and the optimisation are seeded by open_clip_train itself.
"""

from __future__ import annotations

import itertools
import math
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

from curate.scoring.clip import CONFIG_NAME, export_local_dir, write_arch_dir
from curate.training.trainers import complete_recipe


def samples_per_epoch(recipe: dict, train_num_samples: int) -> int:
    """The ``--train-num-samples`` of a recipe: samples_seen / epochs when resampled, else the
    subset size (one pass over the data per epoch)."""
    recipe = complete_recipe(recipe)
    epochs = int(recipe["epochs"])
    if epochs < 1:
        raise ValueError(f"recipe: epochs must be >= 1, got {epochs}")
    if int(train_num_samples) < 1:
        raise ValueError(f"train_num_samples must be >= 1, got {train_num_samples}")
    seen = recipe["samples_seen"]
    if recipe["resampled"]:
        if not seen:
            raise ValueError("recipe: resampled=true needs samples_seen (total samples seen)")
        return math.ceil(int(seen) / epochs)
    if seen is not None and int(seen) != epochs * int(train_num_samples):
        raise ValueError(
            f"recipe: resampled=false reads the data epochs={epochs} times, i.e. "
            f"{epochs * int(train_num_samples)} samples, but samples_seen={seen}; "
            "use resampled=true for a fixed number of samples seen"
        )
    return int(train_num_samples)


def clip_train_argv(
    recipe: dict,
    train_data: str,
    train_num_samples: int,
    logs_dir,
    run_name: str,
    seed: int,
    workers: int = 0,
    arch_dir=None,
) -> list[str]:
    """Arguments of ``open_clip_train.main`` for one training run.

    `train_data`: webdataset shards with ``.jpg`` + ``.txt`` per sample, a brace pattern
    (``dir/curated-{000000..000003}.tar``) or a ``::``-separated list. `train_num_samples`: the
    number of samples in them. The run writes ``<logs_dir>/<run_name>/`` (out.log, params.txt,
    checkpoints/epoch_<epochs>.pt).

    `recipe`: an open_clip recipe (`curate.training.trainers`: its parameters and defaults);
    ``model`` is an open_clip architecture name, or one of curate/model_configs/ trained from
    scratch through the config-only folder ``arch_dir`` (given as ``--model local-dir:``).
    """
    recipe = complete_recipe(recipe)
    world_size = int(recipe["world_size"])
    batch_size = int(recipe["batch_size"])
    if batch_size % world_size:
        raise ValueError(f"recipe: batch_size {batch_size} is not divisible by world_size {world_size}")
    model = f"local-dir:{arch_dir}" if arch_dir else str(recipe["model"])
    argv = [
        "--model",
        model,
        "--train-data",
        str(train_data),
        "--dataset-type",
        "webdataset",
        "--train-num-samples",
        str(samples_per_epoch(recipe, train_num_samples)),
        "--epochs",
        str(int(recipe["epochs"])),
        "--batch-size",
        str(batch_size // world_size),
        "--lr",
        repr(float(recipe["lr"])),
        "--wd",
        repr(float(recipe["wd"])),
        "--warmup",
        str(int(recipe["warmup"])),
        "--beta1",
        repr(float(recipe["beta1"])),
        "--beta2",
        repr(float(recipe["beta2"])),
        "--eps",
        repr(float(recipe["eps"])),
        "--lr-scheduler",
        str(recipe["lr_scheduler"]),
        "--precision",
        str(recipe["precision"]),
        "--device",
        str(recipe["device"]),
        "--workers",
        str(int(workers)),
        "--seed",
        str(int(seed)),
        "--logs",
        str(logs_dir),
        "--name",
        str(run_name),
        "--save-frequency",
        str(int(recipe["save_frequency"])),
        "--log-every-n-steps",
        str(int(recipe["log_every_n_steps"])),
        "--accum-freq",
        str(int(recipe["accum_freq"])),
        "--report-to",
        "",
    ]
    if recipe["grad_clip_norm"] is not None:
        argv += ["--grad-clip-norm", repr(float(recipe["grad_clip_norm"]))]
    if recipe["resampled"]:
        argv.append("--dataset-resampled")
    argv += [str(a) for a in recipe["extra_args"]]
    return argv


def train_clip(
    recipe: dict,
    train_data: str,
    train_num_samples: int,
    out_dir,
    seed: int,
    log_path,
    threads: int = 1,
    workers: int = 0,
    scratch=None,
    plugins=(),
) -> Path:
    """Train a CLIP model per `recipe` (see `clip_train_argv`) and export it as model folder
    `out_dir` (``open_clip_config.json`` + ``open_clip_model.safetensors``). Returns `out_dir`.

    The training runs in a subprocess (``HF_HUB_OFFLINE=1``, ``OMP_NUM_THREADS=threads``,
    ``WANDB_MODE=disabled``; the config's `plugins` imported there too) whose output is appended to
    `log_path`; a failure raises RuntimeError with the log's tail. Like DataComp's ``train.py`` it
    passes ``--save-most-recent --resume latest``: open_clip_train saves ``epoch_latest.pt`` after
    every epoch and, started again, goes on from it. Its files live in `scratch` (default
    ``<out_dir>/_train/``), which a workflow job puts outside its declared model folder so that it
    survives a failed attempt (`curate.training.resume`); a scratch folder made for other inputs is
    emptied first. A recipe with ``nodes`` > 1 starts one torchrun per node through ``srun``
    (`curate.training.launch`). Afterwards the scratch folder is removed and open_clip's
    params.txt is kept as ``<out_dir>/train_params.txt``.
    """
    from curate.training.resume import finish_scratch, prepare_scratch, reshard_fingerprint

    shards = check_train_data(train_data)
    out_dir = Path(out_dir)
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    run_name = "run"
    recipe = complete_recipe(recipe)
    scratch = Path(scratch) if scratch is not None else out_dir / "_train"
    arch_dir = scratch / "arch"
    argv = clip_train_argv(
        recipe,
        train_data,
        train_num_samples,
        scratch / "logs",
        run_name,
        seed,
        workers,
        arch_dir=str(arch_dir.resolve()),
    )
    argv += RESUME_ARGS
    folders = sorted({str(Path(s).parent) for s in shards if "://" not in s and not s.startswith("pipe:")})
    fingerprint = {"argv": argv, "data": [reshard_fingerprint(f) for f in folders]}
    scratch, kept = prepare_scratch(scratch, fingerprint)
    latest = scratch / "logs" / run_name / "checkpoints" / LATEST_CHECKPOINT
    write_arch_dir(str(recipe["model"]), arch_dir)

    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1",
        OMP_NUM_THREADS=str(int(threads)),
        MKL_NUM_THREADS=str(int(threads)),
        WANDB_MODE="disabled",
        TOKENIZERS_PARALLELISM="false",
        PYTHONHASHSEED="0",
        CURATE_PLUGINS=",".join(plugins or ()),
    )
    repo_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = repo_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    from curate.training.launch import training_command

    cmd = training_command(["-m", "curate.training.clip", *argv], recipe)
    with open(log_path, "a", encoding="utf-8") as log:
        if kept and latest.is_file():
            log.write(f"[curate.training.clip] an earlier attempt left {latest}: open_clip_train resumes from it\n")
        elif kept:
            log.write(
                f"[curate.training.clip] an earlier attempt left {scratch} without a checkpoint: from the start\n"
            )
        log.write(f"[curate.training.clip] {' '.join(cmd)}\n")
        log.flush()
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    checkpoint = scratch / "logs" / run_name / "checkpoints" / f"epoch_{int(recipe['epochs'])}.pt"
    if proc.returncode != 0 or not checkpoint.is_file():
        why = f"exit status {proc.returncode}" if proc.returncode else f"no checkpoint {checkpoint}"
        raise RuntimeError(
            f"open_clip_train failed ({why}); its files stay in {scratch} and a rerun resumes from its last "
            f"epoch; log {log_path} ends with:\n{_tail(log_path)}"
        )
    export_local_dir(checkpoint, str(arch_dir.resolve()), out_dir)
    params = scratch / "logs" / run_name / "params.txt"
    if params.is_file():
        shutil.copyfile(params, out_dir / "train_params.txt")
    finish_scratch(scratch)
    assert (out_dir / CONFIG_NAME).is_file()
    return out_dir


#: DataComp's train.py passes these to open_clip_train: save epoch_latest.pt after every epoch and,
#: started again, go on from it (``curate.training.resume``).
RESUME_ARGS = ["--save-most-recent", "--resume", "latest"]
#: open_clip_train's name of that checkpoint (``open_clip_train.main.LATEST_CHECKPOINT_NAME``).
LATEST_CHECKPOINT = "epoch_latest.pt"


def train_command(argv: list[str], world_size: int = 1) -> list[str]:
    """The command that runs open_clip_train (through the seeded entry point) with `argv`: one
    process, or ``world_size`` processes on this node started by torchrun
    (``torch.distributed.run --standalone``), whose environment open_clip_train's distributed
    set-up reads (DataComp's recipes: 8 GPUs). More nodes: `curate.training.launch`."""
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    from curate.training.launch import training_command

    return training_command(["-m", "curate.training.clip", *argv], {"world_size": world_size, "nodes": 1})


def _tail(path: Path, n_lines: int = 40, max_bytes: int = 16384) -> str:
    """The last lines of a (possibly huge) log file."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - max_bytes))
            text = f.read().decode("utf-8", errors="replace")
    except OSError as e:
        return f"(cannot read {path}: {e})"
    return "\n".join(text.splitlines()[-n_lines:])


def shard_list(train_data: str) -> list[str]:
    """The shard paths of a ``--train-data`` value (brace patterns, ``::``-separated)."""
    import braceexpand

    return [p for part in str(train_data).split("::") if part for p in braceexpand.braceexpand(part)]


def check_train_data(train_data: str) -> list[str]:
    """Fail before training (open_clip_train with resampled shards would loop forever) unless
    every shard exists and is a non-empty file and the first one starts with a sample holding
    an image and a caption. Returns the shard list."""
    import tarfile

    shards = shard_list(train_data)
    if not shards:
        raise ValueError(f"no training shards in {train_data!r}")
    for shard in shards:
        if "://" in shard or shard.startswith("pipe:"):
            continue
        if not os.path.isfile(shard):
            raise FileNotFoundError(f"training shard not found: {shard}")
        if os.path.getsize(shard) == 0:
            raise ValueError(f"training shard is empty: {shard}")
    first = shards[0]
    if "://" not in first and not first.startswith("pipe:"):
        exts: dict[str, set] = {}
        try:
            with tarfile.open(first, mode="r|*") as tar:
                for i, info in enumerate(tar):
                    base = info.name.rsplit("/", 1)[-1]
                    key, _, ext = base.partition(".")
                    exts.setdefault(key, set()).add(ext.lower())
                    if i >= 20:
                        break
        except tarfile.TarError as e:
            raise ValueError(f"training shard {first} is not a readable tar: {e}") from e
        image_exts = {"jpg", "jpeg", "png", "webp"}
        if not any(e & image_exts and "txt" in e for e in exts.values()):
            raise ValueError(
                f"training shard {first}: its first samples have no image + txt pair "
                f"(extensions seen: {sorted(set().union(*exts.values())) if exts else []})"
            )
    return shards


def _seeded_open_clip_data(seed: int) -> None:
    """Make open_clip_train's webdataset pipeline order depend on `seed` only (see module doc)."""
    import open_clip_train.data as ocd
    import torch.utils.data
    import webdataset
    import webdataset.filters

    epochs = []

    class RecordedEpoch(ocd.SharedEpoch):  # the training pipeline's epoch, as its workers see it
        def __init__(self, epoch=0):
            super().__init__(epoch)
            epochs.append(self)

    ocd.SharedEpoch = RecordedEpoch

    def shuffle(bufsize=1000, initial=100, rng=None, handler=None):
        # the buffer's seed counts the pipeline's passes from the epoch it was built for: with
        # resampled shards one pass an epoch, so a run resumed at epoch e draws what an
        # uninterrupted one draws there
        calls = itertools.count(epochs[-1].get_value() if epochs else 0)

        def stage(src):
            if rng is not None:
                r = rng
            else:
                info = torch.utils.data.get_worker_info()
                worker = info.id if info is not None else 0
                rank = int(os.environ.get("RANK", 0))
                r = random.Random(f"curate-shuffle-{seed}-{rank}-{worker}-{next(calls)}")
            return webdataset.filters._shuffle(src, bufsize, initial, r, handler)

        return stage

    ocd.wds.shuffle = shuffle  # ocd.wds is the webdataset module; only this process is affected

    original_worker_seed = ocd.pytorch_worker_seed

    def pytorch_worker_seed(increment=0):
        base = original_worker_seed(increment)
        if torch.utils.data.get_worker_info() is None:
            base += 1_000_003 * seed
        return base

    ocd.pytorch_worker_seed = pytorch_worker_seed


def _resumable_open_clip() -> None:
    """Make a resumed open_clip_train run go on with the random state it stopped with: every
    training checkpoint it saves also holds the random state of torch, numpy and Python at the end
    of its epoch, and a run resumed from one restores it when its first epoch starts. (open_clip
    reseeds at start: without this, a resumed run would draw other augmentations than the
    uninterrupted one.) With data loader workers the workers' own generators are not saved:
    those runs resume with other augmentations."""
    import open_clip_train.main as ocm
    import torch

    from curate.training.resume import rng_state, set_rng_state

    resumed = {}
    save, load, train_one_epoch = torch.save, ocm.pt_load, ocm.train_one_epoch

    def saving(obj, f, *args, **kwargs):
        if isinstance(obj, dict) and "epoch" in obj and "optimizer" in obj:
            obj = dict(obj, curate_rng=rng_state())
        return save(obj, f, *args, **kwargs)

    def loading(path, *args, **kwargs):
        checkpoint = load(path, *args, **kwargs)
        if isinstance(checkpoint, dict) and "curate_rng" in checkpoint:
            resumed["rng"] = checkpoint["curate_rng"]
        return checkpoint

    def epoch(*args, **kwargs):
        if "rng" in resumed:  # the first epoch of a resumed run starts where the saved one ended
            set_rng_state(resumed.pop("rng"))
        return train_one_epoch(*args, **kwargs)

    torch.save, ocm.pt_load, ocm.train_one_epoch = saving, loading, epoch


def _cpu_ddp() -> None:
    """open_clip_train wraps the model in ``DistributedDataParallel(model, device_ids=[device])``,
    which torch refuses for a CPU module: CPU processes under torchrun (gloo; the rehearsal's
    2-process recipes) pass no device ids, as torch asks. CUDA is untouched."""
    import torch

    ddp = torch.nn.parallel.DistributedDataParallel
    if getattr(ddp, "_curate_cpu", False):
        return

    class CpuAwareDDP(ddp):
        _curate_cpu = True

        def __init__(self, module, device_ids=None, *args, **kwargs):
            if device_ids and all(torch.device(d).type == "cpu" for d in device_ids):
                device_ids = None
            super().__init__(module, device_ids, *args, **kwargs)

    torch.nn.parallel.DistributedDataParallel = CpuAwareDDP


def _main(argv: list[str]) -> int:
    from open_clip_train.main import main
    from open_clip_train.params import parse_args

    from curate.registry import load_plugins

    if argv[:1] == ["--"]:  # torchrun passes its "--" on where its Python keeps it (3.12+)
        argv = argv[1:]
    load_plugins([p for p in os.environ.get("CURATE_PLUGINS", "").split(",") if p])  # the job's plugins
    _seeded_open_clip_data(parse_args(list(argv)).seed)
    _cpu_ddp()
    _resumable_open_clip()
    result = main(list(argv))
    return 1 if result == -1 else 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
