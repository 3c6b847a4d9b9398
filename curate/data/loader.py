"""Pool shards into model-ready batches: read, decode, preprocess and tokenise in worker processes
(a torch ``DataLoader``), in the reading order of `curate.data.shards.iter_pool_samples`.

Every worker walks every shard's member groups (cheap: no decoding), and the groups are cut into
blocks of ``block_size`` consecutive groups, numbered across the shards; block ``b`` belongs to
worker ``b % workers``, which checks its samples (`curate.data.shards.classify_sample`: uid,
image, decode, caption), decodes each image ONCE, applies every image transform asked for (each
model's own preprocessing: size, crop, mean and std) and every text transform (each tokenizer),
and hands the block on. The ``DataLoader`` returns the workers' items in turn, so blocks arrive in
their order, and the main process sees the samples in exactly the order the serial reader yields
them: it applies the duplicate-uid rule, counts bad samples in a `SkipReport` as the reader does
(same counts, same examples, same order), and cuts the kept samples into consecutive batches of
``batch_size``, as the serial reader's batches (`iter_pool_batches`) were cut. So a model sees the
same batches as before, whatever the number of workers.

Each shard is still read against its record (`curate.data.shards.ShardCheck`): the worker that owns
a shard's last block reports where and why its tar stopped; the tar's sha256 is computed in a
thread of the main process (hashing releases the GIL); a changed or too damaged shard stops the job
as before (`curate.data.shards.close_shard`).

With ``workers=0`` everything runs in the main process (the tiny local run). On CUDA, blocks come
in pinned memory and are copied to the device without blocking.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import torch

from curate.data.integrity import tolerances
from curate.data.shards import (
    ShardCheck,
    SkipReport,
    _start_check,
    classify_sample,
    close_shard,
    iter_tar_groups,
    tar_sha256,
)

log = logging.getLogger(__name__)

#: Member groups per block: the unit a worker decodes and hands on.
BLOCK_SIZE = 32


@dataclass
class PoolInputs:
    """What the models of a pass need from each kept sample, by key: ``images[key]`` turns an RGB
    PIL image into a tensor (one model's preprocessing); ``texts[key]`` turns a list of captions
    into per-sample rows (a tensor whose first dimension is the samples, or a list);
    ``collate[key]`` turns a batch's rows into the model's text input (default: the rows)."""

    images: dict[str, Callable] = field(default_factory=dict)
    texts: dict[str, Callable] = field(default_factory=dict)
    collate: dict[str, Callable] = field(default_factory=dict)


@dataclass
class PoolBatch:
    """Consecutive kept samples: their uids, captions and keys, each image input (a tensor on the
    device) and each text input (collated)."""

    uids: list[str]
    texts: list[str]
    keys: list[str]
    images: dict
    text_inputs: dict

    def __len__(self) -> int:
        return len(self.uids)


def _stack(tensors):
    return torch.stack(tensors) if tensors else None


class PoolBlocks:
    """The workers' side: an iterable dataset of blocks (module docstring). Each item is a dict:
    ``block`` (its number), ``shard`` (index into the tar paths), ``entries`` (per member group in
    order: ``("skip", reason, key)`` or ``("keep", row)``), ``uids``, ``texts``, ``keys``,
    ``images`` (key -> stacked tensor of the kept rows), ``text_rows`` (key -> rows) and, on a
    shard's last block, ``check`` (its `ShardCheck` without the tar's sha256)."""

    def __init__(self, tar_paths, inputs: PoolInputs, block_size: int = BLOCK_SIZE, decode_images: bool = True):
        self.paths = [Path(p) for p in tar_paths]
        self.inputs = inputs
        self.block_size = int(block_size)
        self.decode_images = decode_images

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        base = 0  # the first block number of the current shard
        for index, path in enumerate(self.paths):
            try:
                check, expected = _start_check(path, quiet=True)
            except Exception as err:  # noqa: BLE001 - handed to the main process, which raises it
                if base % workers == worker:
                    yield {"block": base, "shard": index, "error": err}
                return
            position = -1
            block = None
            for key, group in iter_tar_groups(path, check, hash_tar=False):
                position += 1
                if key.rsplit("/", 1)[-1] in expected:
                    check.read += 1
                number = base + position // self.block_size
                if number % workers != worker:
                    continue
                if block is None or block["block"] != number:
                    if block is not None:
                        yield self._finish(block)
                    block = self._start(number, index)
                self._add(block, key, group)
            last = base + max(position, 0) // self.block_size
            if last % workers == worker:
                if block is None or block["block"] != last:  # an empty shard has one empty block
                    if block is not None:
                        yield self._finish(block)
                    block = self._start(last, index)
                block["check"] = check
            if block is not None:
                yield self._finish(block)
            base = last + 1

    @staticmethod
    def _start(number: int, shard: int) -> dict:
        return {"block": number, "shard": shard, "entries": [], "uids": [], "texts": [], "keys": [], "pictures": []}

    def _add(self, block: dict, key: str, group: dict) -> None:
        reason, sample = classify_sample(key, group, self.decode_images)
        if reason is not None:
            block["entries"].append(("skip", reason, key))
            return
        block["entries"].append(("keep", len(block["uids"]), key))
        block["uids"].append(sample.uid)
        block["texts"].append(sample.text)
        block["keys"].append(sample.key)
        block["pictures"].append(sample.image)

    def _finish(self, block: dict) -> dict:
        pictures = block.pop("pictures")
        block["images"] = {k: _stack([f(im) for im in pictures]) for k, f in self.inputs.images.items()}
        block["text_rows"] = {k: f(block["texts"]) if block["texts"] else None for k, f in self.inputs.texts.items()}
        return block


class _Pending:
    """Kept rows waiting for a full batch (tensors on the device)."""

    def __init__(self):
        self.parts: list[dict] = []
        self.size = 0

    def add(self, part: dict) -> None:
        if part["uids"]:
            self.parts.append(part)
            self.size += len(part["uids"])

    def take(self, n: int, inputs: PoolInputs) -> PoolBatch:
        taken, rest, need = [], [], n
        for part in self.parts:
            if need <= 0:
                rest.append(part)
                continue
            m = len(part["uids"])
            if m <= need:
                taken.append(part)
                need -= m
            else:
                taken.append(_rows(part, slice(0, need)))
                rest.append(_rows(part, slice(need, m)))
                need = 0
        self.parts = rest
        self.size -= n - need
        images = {k: torch.cat([p["images"][k] for p in taken]) for k in inputs.images}
        text_inputs = {}
        for k in inputs.texts:
            rows = [p["text_rows"][k] for p in taken]
            joined = torch.cat(rows) if isinstance(rows[0], torch.Tensor) else [r for part in rows for r in part]
            text_inputs[k] = inputs.collate.get(k, lambda x: x)(joined)
        return PoolBatch(
            uids=[u for p in taken for u in p["uids"]],
            texts=[t for p in taken for t in p["texts"]],
            keys=[x for p in taken for x in p["keys"]],
            images=images,
            text_inputs=text_inputs,
        )


def _rows(part: dict, rows) -> dict:
    """The rows ``rows`` (a slice or an index list) of a block's kept samples."""
    if isinstance(rows, slice):
        pick = lambda x: x[rows]  # noqa: E731
        listed = lambda x: x[rows]  # noqa: E731
    else:
        index = torch.as_tensor(rows, dtype=torch.long)
        pick = lambda x: x.index_select(0, index.to(x.device))  # noqa: E731
        listed = lambda x: [x[i] for i in rows]  # noqa: E731
    text_rows = {}
    for k, v in part["text_rows"].items():
        text_rows[k] = None if v is None else (pick(v) if isinstance(v, torch.Tensor) else listed(v))
    return {
        "uids": listed(part["uids"]),
        "texts": listed(part["texts"]),
        "keys": listed(part["keys"]),
        "images": {k: None if v is None else pick(v) for k, v in part["images"].items()},
        "text_rows": text_rows,
    }


def iter_pool_input_batches(
    tar_paths,
    report: SkipReport,
    inputs: PoolInputs,
    batch_size: int,
    workers: int = 0,
    device="cpu",
    block_size: int = BLOCK_SIZE,
    max_missing: float | None = None,
    desc: str = "samples",
) -> Iterator[PoolBatch]:
    """The kept samples of pool shards as model-ready `PoolBatch` es of ``batch_size`` (the last
    one shorter), read, decoded and preprocessed by ``workers`` processes (module docstring).
    Bad samples are counted in ``report`` as `curate.data.shards.iter_pool_samples` counts them,
    and each shard is judged against its record after its samples (same errors)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if isinstance(tar_paths, (str, Path)):
        tar_paths = [tar_paths]
    paths = [Path(p) for p in tar_paths]
    for p in paths:  # fail before reading anything
        if not p.is_file():
            raise FileNotFoundError(f"pool shard not found: {p}")
    limit = tolerances().max_shard_missing if max_missing is None else max_missing
    device = torch.device(device)
    cuda = device.type == "cuda"
    loader = torch.utils.data.DataLoader(
        _Iterable(PoolBlocks(paths, inputs, block_size)),
        batch_size=None,
        num_workers=int(workers),
        pin_memory=cuda,
        prefetch_factor=4 if workers else None,
        persistent_workers=False,
    )
    blocks = iter(loader)  # the workers start here, before any thread of ours
    hashes = ThreadPoolExecutor(1, thread_name_prefix="shard-sha256")
    digests = [hashes.submit(tar_sha256, p) for p in paths]
    pending = _Pending()
    seen: set[str] = set()
    start = last_note = time.monotonic()
    try:
        for block in blocks:
            if "error" in block:
                raise block["error"]
            shard = paths[block["shard"]]
            keep = []
            for entry in block["entries"]:
                report.total_seen += 1
                if entry[0] == "skip":
                    report.add(entry[1], shard.name, entry[2])
                    continue
                row = entry[1]
                uid = block["uids"][row]
                if uid in seen:
                    report.add("duplicate_uid", shard.name, entry[2])
                    continue
                seen.add(uid)
                report.total_kept += 1
                keep.append(row)
            if block["uids"]:
                part = block if len(keep) == len(block["uids"]) else _rows(block, keep)
                part = _to_device(part, device, cuda)
                pending.add(part)
            while pending.size >= batch_size:
                yield pending.take(batch_size, inputs)
            if "check" in block:
                check: ShardCheck = block["check"]
                check.sha256 = digests[block["shard"]].result()
                close_shard(check.finish(), report, limit)
            now = time.monotonic()
            if now - last_note >= 30:
                log.info("%s: %d samples read (%.1f/s)", desc, report.total_seen, report.total_seen / (now - start))
                last_note = now
        if pending.size:
            yield pending.take(pending.size, inputs)
    finally:
        hashes.shutdown(wait=False, cancel_futures=True)
        del blocks


def _to_device(part: dict, device, cuda: bool) -> dict:
    if not cuda:
        return part
    move = lambda x: x.to(device, non_blocking=True) if x is not None and hasattr(x, "to") else x  # noqa: E731
    return dict(
        part,
        images={k: move(v) for k, v in part["images"].items()},
        text_rows={k: move(v) for k, v in part["text_rows"].items()},
    )


class _Iterable(torch.utils.data.IterableDataset):
    """`PoolBlocks` as a torch ``IterableDataset``."""

    def __init__(self, blocks: PoolBlocks):
        self.blocks = blocks

    def __iter__(self):
        return iter(self.blocks)
