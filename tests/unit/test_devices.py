"""The device policy (curate/devices.py): which device a job runs on, when it stops, what it logs."""

import logging
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from curate.devices import (
    DeviceError,
    asked_gpus,
    choose_device,
    cuda_diagnosis,
    inference_autocast,
    job_device,
    required_driver,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "resources, gpus",
    [(None, 0), ({}, 0), ({"gpu": 2}, 2), ({"gpu": "1"}, 1), (SimpleNamespace(gpu=1), 1), (SimpleNamespace(), 0)],
)
def test_asked_gpus_reads_the_gpu_resource(resources, gpus):
    assert asked_gpus(resources) == gpus


def test_a_job_that_asked_for_a_gpu_runs_on_cuda_where_there_is_one():
    assert choose_device(1, "auto", cuda_available=True, cluster=True)[0] == "cuda"
    assert choose_device(1, "cuda", cuda_available=True, cluster=False)[0] == "cuda"


def test_a_job_that_asked_for_no_gpu_runs_on_the_cpu_even_beside_one():
    for setting in ("auto", "cuda", "cpu"):
        assert choose_device(0, setting, cuda_available=True, cluster=True)[0] == "cpu"


def test_config_cpu_runs_every_job_on_the_cpu_and_says_what_it_asked_for():
    device, why = choose_device(2, "cpu", cuda_available=True, cluster=True, rule="score_chunk")
    assert device == "cpu" and "score_chunk" in why and "asked for 2 GPU" in why


def test_a_local_run_without_cuda_falls_back_to_the_cpu_and_says_so():
    device, why = choose_device(1, "auto", cuda_available=False, cluster=False, rule="caption_chunk")
    assert device == "cpu"
    assert "caption_chunk" in why and "no CUDA" in why and "runs on the CPU" in why


def test_a_cluster_job_without_cuda_stops():
    with pytest.raises(DeviceError, match="asked for 1 GPU.*no CUDA.*device: cpu"):
        choose_device(1, "auto", cuda_available=False, cluster=True)


def test_config_cuda_stops_a_local_job_without_cuda():
    with pytest.raises(DeviceError, match="config device: cuda"):
        choose_device(1, "cuda", cuda_available=False, cluster=False)


def test_an_unknown_setting_is_refused():
    with pytest.raises(ValueError, match="gpu"):
        choose_device(1, "gpu", cuda_available=True)


@pytest.mark.parametrize("cuda, driver", [("12.8", 525), ("12.1", 525), ("13.0", 580), ("11.8", 450), (None, None)])
def test_required_driver_per_cuda_major_version(cuda, driver):
    assert required_driver(cuda) == driver


def test_the_diagnosis_names_a_driver_too_old_for_the_build():
    text = cuda_diagnosis("2.8.0+cu128", "12.8", driver="470.82.01")
    assert "needs NVIDIA driver >= 525" in text and "470.82.01" in text and "too old" in text
    assert "TORCH_CUDA=" in text


def test_the_diagnosis_of_a_cpu_build_and_of_a_missing_driver():
    assert "CPU-only build" in cuda_diagnosis("2.8.0+cpu", None, driver="550.1")
    text = cuda_diagnosis("2.8.0+cu128", "12.8", driver=None)
    assert "no NVIDIA driver answers" in text and "too old" not in text


def test_a_recent_enough_driver_is_not_called_too_old():
    assert "too old" not in cuda_diagnosis("2.8.0+cu128", "12.8", driver="550.54.15")


def _snakemake(gpu, device="auto", rule="score_chunk"):
    return SimpleNamespace(resources={"gpu": gpu}, config={"device": device}, rule=rule)


def test_job_device_logs_a_fallback_as_a_warning(monkeypatch, caplog):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    with caplog.at_level(logging.INFO, logger="curate.devices"):
        assert job_device(_snakemake(1)) == "cpu"
    [record] = caplog.records
    assert record.levelno == logging.WARNING and "score_chunk" in record.getMessage()


def test_job_device_stops_a_slurm_job_without_cuda(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("SLURM_JOB_ID", "123")
    with pytest.raises(DeviceError):
        job_device(_snakemake(1))
    assert job_device(_snakemake(1, device="cpu")) == "cpu"


def test_job_device_of_a_cpu_job_logs_at_info(caplog):
    with caplog.at_level(logging.INFO, logger="curate.devices"):
        assert job_device(_snakemake(0)) == "cpu"
    assert [r.levelno for r in caplog.records] == [logging.INFO]


def test_inference_autocast_is_none_on_the_cpu():
    import torch

    with inference_autocast("cpu", "bf16"):
        assert not torch.is_autocast_enabled()
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


# ------------------------------------------------------------------ every GPU rule's script


def _rule_scripts() -> dict:
    scripts = {}
    for smk in (ROOT / "rules").glob("*.smk"):
        for block in re.split(r"^\s*rule ", smk.read_text(), flags=re.M)[1:]:
            name = block.split(":", 1)[0].strip()
            found = re.search(r"script:\s*\n\s*\"\.\./scripts/(\w+\.py)\"", block)
            if found:
                scripts[name] = ROOT / "scripts" / found.group(1)
    return scripts


def test_every_rule_given_a_gpu_hands_the_job_device_to_its_models():
    profile = yaml.safe_load((ROOT / "profiles" / "default" / "config.yaml").read_text())
    gpu_rules = {rule for rule, entry in profile["set-resources"].items() if entry.get("gpu")}
    scripts = _rule_scripts()
    assert gpu_rules <= set(scripts)
    for rule in sorted(gpu_rules):
        text = scripts[rule].read_text()
        assert "job_device(snakemake)" in text, f"{rule}: {scripts[rule].name} does not call job_device"
        assert "cuda.is_available" not in text, f"{rule}: {scripts[rule].name} picks its own device"
