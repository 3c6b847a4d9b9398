"""Benchmark: how long `snakemake -n` of a table takes at each scale, and how many jobs it plans.

Each scale runs ``snakemake -n --quiet rules --config scale=<scale> -- <target>`` in a fresh
temporary working directory (nothing built, so the whole DAG is planned; no network: the fetch
rules are only planned). Printed per scale: wall time of the dry run, total jobs, and the jobs of
the per-chunk rules. The time includes Snakemake's start (parsing the workflow and config,
about 10 s on this 2-core machine), which does not grow with the pool.

    python benchmarks/dag.py                          # table1 at tiny, small, medium, large, xlarge
    python benchmarks/dag.py --scales xlarge --target results/table2.csv
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def dry_run(scale: str, target: str) -> tuple[float, dict]:
    with tempfile.TemporaryDirectory(prefix="dag-") as workdir:
        command = [
            SNAKEMAKE,
            "--snakefile",
            str(ROOT / "Snakefile"),
            "--configfile",
            str(ROOT / "config.yaml"),
            "--directory",
            workdir,
            "-n",
            "--quiet",
            "rules",
            "--cores",
            "2",
            "--config",
            f"scale={scale}",
            "--",
            target,
        ]
        env = dict(os.environ, HF_HUB_OFFLINE="1", NO_ALBUMENTATIONS_UPDATE="1")
        start = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=workdir)
        elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"dry run at scale {scale} failed:\n{result.stderr[-3000:]}")
    jobs = {k: int(v) for k, v in re.findall(r"^(\w+)\s+(\d+)$", result.stdout + result.stderr, re.M)}
    return elapsed, jobs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", nargs="+", default=["tiny", "small", "medium", "large", "xlarge"])
    parser.add_argument("--target", default="results/table1.csv")
    args = parser.parse_args(argv)
    print(f"{'scale':<8} {'dry run (s)':>11} {'jobs':>6} {'download':>9} {'score':>6}  target {args.target}")
    for scale in args.scales:
        elapsed, jobs = dry_run(scale, args.target)
        print(
            f"{scale:<8} {elapsed:>11.1f} {jobs.get('total', 0):>6} {jobs.get('download_pool_chunk', 0):>9} "
            f"{jobs.get('score_chunk', 0):>6}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
