"""Benchmark: scoring pool shards with CLIP models, before and after the one-pass loader.

Builds DataComp-like shards (512 px JPEGs, img2dataset's layout, checksums recorded) and CLIP
models by open_clip architecture name with random weights (nothing is downloaded), then prints
samples/s for:

* ``decode+preprocess``: one process reading, decoding and preprocessing (the loader's worker's
  work, for every model's preprocessing);
* ``model-only``: the m models on ready tensors on the device (no reading);
* ``before``: the serial path the workflow had: one pass over the shards per scorer, each image
  decoded in the main process (`curate.data.shards.iter_pool_batches` + `curate.scoring.clip.encode`);
* ``after``: `curate.scoring.clip_score.score_chunk_group`: ONE pass, k loader workers, every
  image decoded once, every model on the device;

and the efficiency = after / min(model-only, k x decode rate) (k = 1 with no workers: the main
process decodes). Its last line is ``scoring efficiency: X``.

    python benchmarks/scoring.py --quick                  # ViT-B-32, 1 model, 32 samples
    python benchmarks/scoring.py --archs tiny-vit tiny-vit tiny-vit-narrow --workers 1   # decode-bound
    python benchmarks/scoring.py --archs ViT-B-32 ViT-B-32 --samples 256 --workers 1
    python benchmarks/scoring.py --archs ViT-B-32 ViT-L-14 --device cuda --workers 8 --samples 4096
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def build_shards(folder: Path, samples: int, per_shard: int, size: int, seed: int = 0) -> list[Path]:
    """DataComp-like shards: ``size`` px JPEGs (smooth colour fields with noise, quality 90, about
    the bytes of a real photo), a caption and a uid each; their checksums recorded."""
    import numpy as np
    from PIL import Image

    from curate.data.shards import ShardWriter, record_shard

    rng = np.random.default_rng(seed)
    paths = []
    i = 0
    shard = 0
    while i < samples:
        with ShardWriter(folder, shard, per_shard, fixed_time=0.0) as writer:
            for _ in range(min(per_shard, samples - i)):
                y, x = np.mgrid[0:size, 0:size] / size
                base = rng.uniform(0, 255, (3,))
                field = base + 80 * np.sin(6 * x[..., None] * rng.uniform(0.5, 2, 3) + 4 * y[..., None])
                noise = rng.normal(0, 12, (size, size, 3))
                pixels = np.clip(field + noise, 0, 255).astype(np.uint8)
                buffer = io.BytesIO()
                Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
                writer.write(buffer.getvalue(), f"a photo of sample {i}", {"uid": f"{i:032x}"})
                i += 1
        record_shard(writer.tar_path)
        paths.append(writer.tar_path)
        shard += 1
    return paths


def build_models(archs: list[str], device: str, folder: Path):
    """Models by architecture name with random weights, eval mode, on ``device``: open_clip's
    (``ViT-B-32``, ``ViT-L-14``, ...) or the workflow's tiny ones (``tiny-vit``: the tiny scale's
    scorers, `curate.scoring.clip.write_arch_dir`), where decoding, not the model, is the cost."""
    import open_clip
    import torch

    from curate.scoring.clip import load_model, write_arch_dir

    models = []
    for index, arch in enumerate(archs):
        torch.manual_seed(index)
        if arch.startswith("tiny-"):
            model, preprocess, tokenizer = load_model(str(write_arch_dir(arch, folder / f"{arch}-{index}")))
        else:
            model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=None)
            tokenizer = open_clip.get_tokenizer(arch)
        models.append((f"{arch}#{index}", model.to(device).eval(), preprocess, tokenizer))
    return models


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def decode_rate(paths, models, limit: int) -> float:
    """Samples/s of one process reading, decoding and preprocessing (every model's transform)."""
    from curate.data.shards import SkipReport, iter_pool_samples

    start, n = time.perf_counter(), 0
    for sample in iter_pool_samples(paths, SkipReport()):
        for _, _, preprocess, tokenizer in models:
            preprocess(sample.image)
            tokenizer([sample.text])
        n += 1
        if n >= limit:
            break
    return rate(n, time.perf_counter() - start)


def model_rate(models, batch_size: int, batches: int, device: str, precision: str) -> float:
    """Samples/s of every model on ready tensors on the device (one batch of warm-up)."""
    import torch

    from curate.devices import inference_autocast

    inputs = []
    for _, model, preprocess, tokenizer in models:
        size = preprocess.transforms[0].size
        size = size if isinstance(size, int) else size[0]
        images = torch.randn(batch_size, 3, size, size, device=device)
        tokens = tokenizer([f"a photo of sample {i}" for i in range(batch_size)]).to(device)
        inputs.append((model, images, tokens))
    with torch.inference_mode(), inference_autocast(device, precision):
        for step in range(batches + 1):
            if step == 1:
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                start = time.perf_counter()
            for model, images, tokens in inputs:
                model.encode_image(images)
                model.encode_text(tokens)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
    return rate(batches * batch_size, time.perf_counter() - start)


def before_rate(paths, models, batch_size: int) -> tuple[float, int]:
    """The serial path: one pass per scorer, each decoding every image in the main process."""
    import torch

    from curate.data.shards import SkipReport, iter_pool_batches
    from curate.scoring.clip import encode

    start, n = time.perf_counter(), 0
    with torch.no_grad():
        for _, model, preprocess, tokenizer in models:
            n = 0
            for batch in iter_pool_batches(paths, SkipReport(), batch_size):
                encode(model, preprocess, tokenizer, [s.image for s in batch], [s.text for s in batch], batch_size)
                n += len(batch)
    return rate(n, time.perf_counter() - start), n


def after_rate(paths, models, batch_size: int, workers: int, device: str, precision: str) -> tuple[float, int]:
    """`score_chunk_group`'s pass: one decode per image, k workers, every model."""
    from curate.devices import inference_autocast
    from curate.scoring.clip_score import ClipPassModel
    from curate.scoring.one_pass import run_pass

    passes = [ClipPassModel(name, model, preprocess, tokenizer) for name, model, preprocess, tokenizer in models]
    start = time.perf_counter()
    uids, _, _, _ = run_pass(
        passes,
        paths,
        batch_size,
        workers=workers,
        device=device,
        autocast=lambda: inference_autocast(device, precision),
    )
    return rate(len(uids), time.perf_counter() - start), len(uids)


def main(argv=None) -> float:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", nargs="+", default=["ViT-B-32"], help="open_clip architectures (random weights)")
    parser.add_argument("--samples", type=int, default=512)
    parser.add_argument("--per-shard", type=int, default=128)
    parser.add_argument("--size", type=int, default=512, help="image side in px (DataComp's downloads: 512)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1, help="loader processes of the one pass")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the models")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="bf16", help="autocast on CUDA (bf16, fp16, fp32)")
    parser.add_argument("--skip-before", action="store_true", help="do not time the serial path")
    parser.add_argument(
        "--quick", action="store_true", help="32 samples, batches of 8 (ViT-B-32: < 60 s on a free core)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.samples, args.per_shard, args.batch_size = 32, 16, 8
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    m, k = len(args.archs), args.workers
    with tempfile.TemporaryDirectory(prefix="bench-scoring-") as tmp:
        paths = build_shards(Path(tmp), args.samples, args.per_shard, args.size)
        megabytes = sum(p.stat().st_size for p in paths) / 1e6
        models = build_models(args.archs, args.device, Path(tmp))
        print(
            f"# {args.samples} samples of {args.size} px ({megabytes / args.samples * 1000:.0f} kB each) in {len(paths)} shards;"
        )
        print(
            f"# models {', '.join(args.archs)} (random weights) on {args.device}; torch threads {args.threads}; batch {args.batch_size}"
        )
        decode = decode_rate(paths, models, min(args.samples, 64))
        model_only = model_rate(
            models, args.batch_size, max(1, min(4, args.samples // args.batch_size)), args.device, args.precision
        )
        rows = [
            ("decode+preprocess (1 process, every model's transform)", decode),
            (f"model-only ({m} model(s), ready tensors)", model_only),
        ]
        if not args.skip_before:
            before, _ = before_rate(paths, models, args.batch_size)
            rows.append((f"before: serial, one pass per scorer ({m} decodes per image)", before))
        after, n = after_rate(paths, models, args.batch_size, k, args.device, args.precision)
        rows.append((f"after: one pass, {k} loader worker(s), 1 decode per image", after))
    print(f"{'stage':<64} {'samples/s':>10}")
    for name, value in rows:
        print(f"{name:<64} {value:>10.1f}")
    bound = min(model_only, max(k, 1) * decode)
    efficiency = after / bound
    if not args.skip_before:
        print(f"speed-up after/before: {after / before:.2f}x")
    print(f"bound min(model-only, {max(k, 1)} x decode) = {bound:.1f} samples/s")
    print(f"scoring efficiency: {efficiency:.2f}")
    return efficiency


if __name__ == "__main__":
    main()
