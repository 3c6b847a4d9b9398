import re

import pytest

pytestmark = pytest.mark.workflow

TARGETS = ["results/table1.csv"]


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("scale", ["tiny"])
def test_dry_run(tmp_path, snakemake_run, target, scale):
    result = snakemake_run(tmp_path, "-n", "--cores", "2", "--config", f"scale={scale}", "--", target)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", result.stdout + result.stderr, re.M))
    assert int(jobs["total"]) > 10
    assert jobs["table1"] == "1"


def test_bad_config_fails_at_start_naming_the_key(tmp_path, snakemake_run):
    result = snakemake_run(tmp_path, "-n", "--cores", "1", "--config", "threads=0")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "threads" in output and "minimum" in output
