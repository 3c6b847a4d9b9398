"""The device of every job that runs a model, decided in one place (`job_device`).

A rule asks for GPUs through its resources (``gpu: N`` in the workflow profile, or a training
rule's recipe); the config's ``device`` says what to do with that (`choose_device`):

- ``auto`` (the default): a job that asked for a GPU runs on CUDA. Where torch sees no CUDA, a
  local run goes on on the CPU and says so in the job's log (the laptop's tiny run: the profile
  asks for GPUs it does not have); a job on a cluster (inside a SLURM allocation) stops, since the
  cluster gave it a GPU that torch cannot use (a wrong torch build for the node's driver, most
  often: `cuda_diagnosis`).
- ``cuda``: every job that asked for a GPU stops where there is no CUDA, local runs too.
- ``cpu``: every job runs on the CPU, whatever it asked for (said in the log).

A job that asked for no GPU runs on the CPU, even where a GPU is visible (it was not given one).
On CUDA, inference runs under autocast (`inference_autocast`, config ``cuda_precision``); on the
CPU in fp32, as the scores have always been computed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import subprocess

log = logging.getLogger(__name__)

DEVICE_SETTINGS = ("auto", "cuda", "cpu")
PRECISIONS = ("bf16", "fp16", "fp32")

#: The oldest NVIDIA driver (Linux) that runs a CUDA build of each major version, with CUDA's
#: minor version compatibility (NVIDIA's "CUDA Compatibility" guide): 13.x needs >= 580, 12.x
#: >= 525, 11.x >= 450.
MIN_DRIVER = {13: 580, 12: 525, 11: 450}

#: Environment variables that say a job runs inside a cluster allocation.
CLUSTER_JOB_VARIABLES = ("SLURM_JOB_ID",)


class DeviceError(RuntimeError):
    """A job that asked for a GPU finds no CUDA, and the config does not let it fall back."""


def asked_gpus(resources) -> int:
    """The GPUs a job asked for: its ``gpu`` resource (Snakemake's resources object, a mapping,
    or None), 0 where it has none."""
    if resources is None:
        return 0
    value = resources.get("gpu", 0) if isinstance(resources, dict) else getattr(resources, "gpu", 0)
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def in_cluster_job(environ=None) -> bool:
    environ = os.environ if environ is None else environ
    return any(environ.get(name) for name in CLUSTER_JOB_VARIABLES)


def driver_version() -> str | None:
    """The NVIDIA driver version ``nvidia-smi`` reports, or None where there is none."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    lines = [line.strip() for line in done.stdout.splitlines() if line.strip()]
    return lines[0] if done.returncode == 0 and lines else None


def required_driver(cuda_version: str | None) -> int | None:
    """The oldest driver a torch build for ``cuda_version`` (``torch.version.cuda``) runs on."""
    if not cuda_version:
        return None
    return MIN_DRIVER.get(int(cuda_version.split(".")[0]))


def cuda_diagnosis(torch_version: str | None = None, cuda_version: str | None = None, driver=None) -> str:
    """Why torch sees no CUDA, as far as can be told: the torch build, the driver it needs, the
    driver installed, ``CUDA_VISIBLE_DEVICES``, and what to install instead."""
    if torch_version is None:
        import torch

        torch_version, cuda_version = torch.__version__, torch.version.cuda
    driver = driver_version() if driver is None else driver
    parts = [f"torch {torch_version}"]
    if not cuda_version:
        parts.append("is a CPU-only build (reinstall it with a CUDA build: README, 'GPU drivers')")
    else:
        need = required_driver(cuda_version)
        parts.append(f"is built for CUDA {cuda_version}" + (f", which needs NVIDIA driver >= {need}" if need else ""))
        if driver is None:
            parts.append("no NVIDIA driver answers (nvidia-smi is missing or fails: no GPU in this job?)")
        else:
            parts.append(f"the driver here is {driver}")
            major = re.match(r"(\d+)", driver)
            if need and major and int(major.group(1)) < need:
                builds = ", ".join(f"CUDA {v}.x needs >= {d}" for v, d in sorted(MIN_DRIVER.items(), reverse=True))
                parts.append(
                    f"too old for this build: install the torch build for your driver ({builds}), e.g. "
                    "`TORCH_CUDA=cu126 ./setup.sh` (README, 'GPU drivers')"
                )
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    parts.append(f"CUDA_VISIBLE_DEVICES={visible!r}" if visible is not None else "CUDA_VISIBLE_DEVICES is not set")
    return "; ".join(parts)


def choose_device(
    gpus: int, setting: str = "auto", cuda_available: bool | None = None, cluster: bool | None = None, rule: str = ""
) -> tuple[str, str]:
    """``(device, why)`` of a job that asked for ``gpus`` GPUs under the config's ``device``
    ``setting`` (module docstring). Raises `DeviceError` where it must stop."""
    if setting not in DEVICE_SETTINGS:
        raise ValueError(f"config device: {setting!r} is not one of {DEVICE_SETTINGS}")
    what = f"job {rule}" if rule else "this job"
    if setting == "cpu":
        return "cpu", f"{what} runs on the CPU (config device: cpu)" + (f"; it asked for {gpus} GPU(s)" if gpus else "")
    if gpus < 1:
        return "cpu", f"{what} asked for no GPU: it runs on the CPU"
    if cuda_available is None:
        import torch

        cuda_available = torch.cuda.is_available()
    if cuda_available:
        return "cuda", f"{what} asked for {gpus} GPU(s): it runs on CUDA"
    cluster = in_cluster_job() if cluster is None else cluster
    if setting == "cuda" or cluster:
        why = "config device: cuda" if setting == "cuda" else "a cluster job (config device: auto stops there)"
        raise DeviceError(
            f"{what} asked for {gpus} GPU(s) but torch sees no CUDA ({cuda_diagnosis()}). It stops rather than run "
            f"on the CPU ({why}); set `device: cpu` in the config to run every job on the CPU on purpose"
        )
    return "cpu", (
        f"{what} asked for {gpus} GPU(s) but torch sees no CUDA ({cuda_diagnosis()}): it runs on the CPU "
        "(config device: auto lets a local run fall back; `device: cuda` makes it stop)"
    )


def job_device(snakemake) -> str:
    """The device of a rule script's job (`choose_device` of its ``gpu`` resource and the config's
    ``device``), logged: every rule that runs a model calls this and hands the result to its
    loaders."""
    gpus = asked_gpus(getattr(snakemake, "resources", None))
    setting = snakemake.config.get("device", "auto")
    device, why = choose_device(gpus, setting, rule=getattr(snakemake, "rule", "") or "")
    (log.warning if gpus and device == "cpu" else log.info)("device: %s", why)
    return device


def inference_autocast(device, precision: str = "bf16"):
    """Autocast for inference on ``device``: on CUDA to ``precision`` (bf16, or fp16 where the
    GPU has no bf16; fp32: none); on the CPU none (fp32, as always)."""
    import torch

    device_type = torch.device(device).type
    if device_type != "cuda" or precision == "fp32":
        return contextlib.nullcontext()
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {PRECISIONS}")
    dtype = torch.bfloat16 if precision == "bf16" and torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast(device_type="cuda", dtype=dtype)
