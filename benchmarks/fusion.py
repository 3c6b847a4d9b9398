"""Benchmark: MoS, the standardised sum and SCS on synthetic pool-scale scores.

Each (case, size) runs in its own subprocess, which reports its wall time and its peak
resident memory (``resource.getrusage(RUSAGE_SELF).ru_maxrss``), so the figures do not
leak into each other. Single-threaded BLAS/OpenMP is forced in the children.

Cases (docs/algorithms.md §5, §6, §7):

* ``mos``    -- M = 8 score columns, processed chunk by chunk as the workflow does:
  pass 1 ``column_stats`` (streaming), pass 2 ``mos_sigma_range`` of the min-max
  normalised chunks, pass 3 ``mos`` of each normalised chunk; the fused score of the
  whole pool is kept in one float32 array.
* ``stdsum`` -- M = 8, pass 1 ``column_stats``, pass 2 ``standardised_sum`` per chunk.
* ``scs``    -- Soft Cap Sampling, alpha 0.15, G = 100 000, n = N, float32 scores.

Synthetic chunks are regenerated deterministically in every pass (as if read back
from per-chunk score files); the time spent generating them is reported separately
("gen") and is included in "total" but not in "compute".

    python benchmarks/fusion.py                       # N = 10M
    python benchmarks/fusion.py --sizes 10M 128M      # also pool scale (minutes)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
M_SCORES = 8


def parse_size(text: str) -> int:
    t = text.strip().upper()
    mult = {"K": 10**3, "M": 10**6, "B": 10**9}.get(t[-1:], 1)
    return int(float(t[:-1] if t[-1:] in "KMB" else t) * mult)


def _chunk(N: int, start: int, stop: int, seed: int):
    """Deterministic synthetic N_c x 8 float32 scores for rows [start, stop)."""
    import numpy as np

    rng = np.random.default_rng([seed, start])
    n = stop - start
    base = rng.standard_normal(n, dtype=np.float32)
    S = np.empty((n, M_SCORES), dtype=np.float32)
    for j in range(M_SCORES):
        noise = rng.standard_normal(n, dtype=np.float32)
        S[:, j] = (0.5 + 0.05 * j) * base + (0.3 + 0.1 * j) * noise + 0.2 * j
    return S


def _child(case: str, N: int, chunk: int, seed: int) -> dict:
    sys.path.insert(0, str(ROOT))
    import resource

    import numpy as np

    from curate.selection import fusion, sampling

    gen = 0.0

    def chunks():
        nonlocal gen
        for a in range(0, N, chunk):
            t0 = time.perf_counter()
            S = _chunk(N, a, min(N, a + chunk), seed)
            gen += time.perf_counter() - t0
            yield a, S

    t_start = time.perf_counter()
    info: dict = {}
    if case == "mos":
        stats = fusion.column_stats(S for _, S in chunks())
        sig = fusion.mos_sigma_range(fusion.minmax(S, stats) for _, S in chunks())
        out = np.empty(N, dtype=np.float32)
        for a, S in chunks():
            out[a : a + S.shape[0]] = fusion.mos(fusion.minmax(S, stats), sigma_range=sig)
        info = {"sigma_range": [round(x, 6) for x in sig], "mean": float(out.mean(dtype=np.float64))}
    elif case == "stdsum":
        stats = fusion.column_stats(S for _, S in chunks())
        out = np.empty(N, dtype=np.float32)
        for a, S in chunks():
            out[a : a + S.shape[0]] = fusion.standardised_sum(S, stats)
        info = {"mean": float(out.mean(dtype=np.float64))}
    elif case == "scs":
        t0 = time.perf_counter()
        s = np.random.default_rng(seed).standard_normal(N, dtype=np.float32)
        gen += time.perf_counter() - t0
        idx = sampling.scs(s, N, alpha=0.15, batch_size=100_000, seed=seed)
        counts = np.bincount(idx, minlength=N)
        info = {"distinct": int((counts > 0).sum()), "max_repeat": int(counts.max())}
    else:
        raise SystemExit(f"unknown case {case}")
    total = time.perf_counter() - t_start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    return {
        "case": case,
        "N": N,
        "total_s": total,
        "gen_s": gen,
        "compute_s": total - gen,
        "peak_gb": peak / 1e9,
        **info,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=["10M"], help="pool sizes, e.g. 10M 128M")
    ap.add_argument("--cases", nargs="+", default=["mos", "stdsum", "scs"], choices=["mos", "stdsum", "scs"])
    ap.add_argument("--chunk", default="1M", help="rows per chunk for mos / stdsum")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="also write the results as JSON lines here")
    ap.add_argument("--_child", nargs=4, metavar=("CASE", "N", "CHUNK", "SEED"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._child:
        case, N, chunk, seed = args._child
        print(json.dumps(_child(case, int(N), int(chunk), int(seed))))
        return 0
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    results = []
    print(f"{'case':8} {'N':>12} {'total s':>9} {'compute s':>10} {'gen s':>7} {'peak GB':>8}  extra", flush=True)
    for size in args.sizes:
        N = parse_size(size)
        for case in args.cases:
            cmd = [sys.executable, __file__, "--_child", case, str(N), str(parse_size(args.chunk)), str(args.seed)]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                print(f"{case:8} {N:>12,} FAILED\n{proc.stderr[-2000:]}", flush=True)
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            results.append(r)
            extra = {k: v for k, v in r.items() if k not in {"case", "N", "total_s", "gen_s", "compute_s", "peak_gb"}}
            print(
                f"{case:8} {N:>12,} {r['total_s']:9.1f} {r['compute_s']:10.1f} {r['gen_s']:7.1f} "
                f"{r['peak_gb']:8.2f}  {extra}",
                flush=True,
            )
    if args.json:
        with open(args.json, "w") as fh:
            for r in results:
                fh.write(json.dumps(r) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
