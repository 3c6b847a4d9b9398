"""Benchmark: resharding a subset of a pool (`curate.data.reshard.reshard`), samples/s per core.

Generates a DataComp-like pool (img2dataset's layout: tar + parquet + _stats.json per shard, the
checksums recorded, 512 px JPEGs of about 90 kB) and a subset of a fraction of its uids, then
times our resharder (one process: it reads every pool shard against its record through
`curate.data.shards.iter_checked_groups` and copies each kept sample's members as bytes) and,
given a local checkout of DataComp's repository (``--datacomp PATH``; never vendored here), its
own ``resharder.py`` on the same pool and subset with one worker, and says whether both outputs
hold the same samples (the same uids, each as often as the subset lists it, with the same bytes).

Samples/s counts pool samples read per second of wall time (per core: one process each; the
figure's CPU time is printed too, on a machine shared with other work the wall time is the
larger).

    python benchmarks/reshard.py                          # 4 000 samples, half of them kept
    python benchmarks/reshard.py --samples 20000 --datacomp ~/src/datacomp
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def build_pool(folder: Path, samples: int, per_shard: int, size: int, distinct: int = 64, seed: int = 0):
    """Pool shards of ``samples`` samples (``distinct`` different JPEGs reused: the resharder
    never decodes them, so only their bytes matter); returns (tar paths, uids)."""
    import numpy as np
    from PIL import Image

    from curate.data.shards import ShardWriter, record_shard

    rng = np.random.default_rng(seed)
    jpgs = []
    for _ in range(distinct):
        pixels = np.clip(rng.normal(128, 40, (size, size, 3)), 0, 255).astype(np.uint8)
        pixels[: size // 2] //= 2  # some structure, JPEG sizes like a photo's
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=75)
        jpgs.append(buffer.getvalue())
    uids = [f"{int(x):016x}{int(y):016x}" for x, y in rng.integers(0, 2**63, (samples, 2))]
    paths, i, shard = [], 0, 0
    while i < samples:
        with ShardWriter(folder, shard, per_shard, fixed_time=0.0) as writer:
            for _ in range(min(per_shard, samples - i)):
                writer.write(jpgs[i % distinct], f"a caption of sample {i}", {"uid": uids[i], "url": f"http://x/{i}"})
                i += 1
        record_shard(writer.tar_path)
        paths.append(writer.tar_path)
        shard += 1
    return paths, uids


def subset_of(uids, fraction: float, repeats: float, seed: int = 1):
    """A subset: ``fraction`` of the uids, a ``repeats`` share of those listed twice; as DataComp's
    .npy of (u8, u8) pairs."""
    import numpy as np

    from curate.data.subset import uids_to_u8u8

    rng = np.random.default_rng(seed)
    kept = [u for u in uids if rng.random() < fraction]
    twice = [u for u in kept if rng.random() < repeats]
    return np.sort(uids_to_u8u8(kept + twice))  # sorted, as subset files are (DataComp searches them)


def timed(fn):
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    result = fn()
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return result, wall, cpu


def samples_of(shard_dir: Path) -> Counter:
    """(uid, sha of every member's bytes but the json) -> times written, over a reshard's tars."""
    import hashlib

    found = Counter()
    for tar_path in sorted(Path(shard_dir).glob("*.tar")):
        groups: dict[str, dict[str, bytes]] = {}
        with tarfile.open(tar_path) as tar:
            for member in tar:
                if not member.isfile():
                    continue
                key, _, suffix = member.name.partition(".")
                groups.setdefault(key, {})[suffix] = tar.extractfile(member).read()
        for members in groups.values():
            uid = json.loads(members["json"])["uid"]
            digest = hashlib.sha256(b"".join(members[s] for s in sorted(members) if s != "json")).hexdigest()
            found[(uid, digest)] += 1
    return found


def run_ours(paths, subset, out: Path, per_shard: int):
    from curate.data.reshard import reshard

    return reshard(subset, paths, out, samples_per_shard=per_shard)


def run_datacomp(
    datacomp: Path, python: str, pool_dir: Path, n_shards: int, subset_path: Path, out: Path, per_shard: int
):
    """DataComp's resharder.py, one worker, on the same pool and subset (``python``: an interpreter
    with its requirements: webdataset, img2dataset, pysimdjson, cloudpathlib, opencv); returns
    its wall and CPU time."""
    command = [
        python,
        str(datacomp / "resharder.py"),
        "-i",
        str(pool_dir),
        "-o",
        str(out),
        "-s",
        str(subset_path),
        "-n",
        str(n_shards),
        "-j",
        "1",
        "--shard-size",
        str(per_shard),
    ]
    out.mkdir(parents=True, exist_ok=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        raise RuntimeError(f"DataComp's resharder failed ({done.returncode}): {done.stderr[-2000:]}")
    return wall, cpu


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=4000)
    parser.add_argument("--per-shard", type=int, default=1000, help="pool samples per shard (DataComp: 10 000)")
    parser.add_argument("--size", type=int, default=512, help="JPEG side in px")
    parser.add_argument("--fraction", type=float, default=0.5, help="share of the pool in the subset")
    parser.add_argument("--repeats", type=float, default=0.1, help="share of the subset listed twice")
    parser.add_argument("--datacomp", type=Path, help="a local checkout of github.com/mlfoundations/datacomp")
    parser.add_argument("--python", default=sys.executable, help="the interpreter that runs DataComp's resharder")
    parser.add_argument("--keep", type=Path, help="build the pool here and leave it (default: a temporary folder)")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import numpy as np

    with tempfile.TemporaryDirectory(prefix="bench-reshard-") as tmp:
        root = args.keep or Path(tmp)
        pool_dir = root / "pool"
        pool_dir.mkdir(parents=True, exist_ok=True)
        paths, uids = build_pool(pool_dir, args.samples, args.per_shard, args.size)
        subset = subset_of(uids, args.fraction, args.repeats)
        subset_path = root / "subset.npy"
        np.save(subset_path, subset)
        megabytes = sum(p.stat().st_size for p in paths) / 1e6
        print(f"# pool: {args.samples} samples, {len(paths)} shards, {megabytes:.0f} MB; subset: {len(subset)} rows")
        meta, wall, cpu = timed(lambda: run_ours(paths, subset, root / "ours", args.per_shard))
        rows = [("ours (curate.data.reshard, 1 process)", wall, cpu, meta["written"])]
        if args.datacomp is not None:
            wall_dc, cpu_dc = run_datacomp(
                args.datacomp, args.python, pool_dir, len(paths), subset_path, root / "datacomp", args.per_shard
            )
            rows.append(("DataComp resharder.py (1 worker)", wall_dc, cpu_dc, None))
        print(f"{'resharder':<40} {'wall s':>8} {'cpu s':>8} {'samples/s':>10} {'MB/s':>8}")
        for name, wall, cpu, _ in rows:
            print(f"{name:<40} {wall:>8.2f} {cpu:>8.2f} {args.samples / wall:>10.0f} {megabytes / wall:>8.1f}")
        for name, _, cpu, _ in rows:
            print(f"{name}: {args.samples / cpu:.0f} samples per CPU-second")
        print(f"written: {meta['written']} samples ({meta['written_unique']} unique) in {meta['shards']} shards")
        if args.datacomp is not None:
            ours, theirs = samples_of(root / "ours"), samples_of(root / "datacomp")
            same = ours == theirs  # each (uid, member bytes) as often in both
            print(f"same samples in both outputs (uid, member bytes, repeats): {same} ({sum(ours.values())} written)")
            print(
                f"ours / DataComp's samples/s (wall): {rows[1][1] / rows[0][1]:.2f}; per CPU-second: {rows[1][2] / rows[0][2]:.2f}"
            )
        else:
            print("(DataComp's resharder not run: give --datacomp PATH, a local checkout of its repository)")


if __name__ == "__main__":
    main()
