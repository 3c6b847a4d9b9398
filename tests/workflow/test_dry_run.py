import re

import pytest

pytestmark = pytest.mark.workflow

TARGETS = ["results/table1.csv", "results/table2.csv"]


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("scale", ["tiny"])
def test_dry_run(tmp_path, snakemake_run, target, scale):
    result = snakemake_run(tmp_path, "-n", "--cores", "2", "--config", f"scale={scale}", "--", target)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", result.stdout + result.stderr, re.M))
    assert int(jobs["total"]) > 10
    table = target.rsplit("/", 1)[-1].removesuffix(".csv")
    assert jobs[table] == "1"
    if table == "table2":
        # every fusion: statistics once, then chunk by chunk; IN weights need the scorers evaluated
        assert int(jobs["fusion_stats"]) >= 5
        assert int(jobs["fuse_chunk"]) == 4 * int(jobs["fusion_stats"])
        assert jobs["evaluate_scorer"] == "3"


def test_bad_config_fails_at_start_naming_the_key(tmp_path, snakemake_run):
    result = snakemake_run(tmp_path, "-n", "--cores", "1", "--config", "threads=0")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "threads" in output and "minimum" in output
