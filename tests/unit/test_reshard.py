import hashlib
import io
import json
import tarfile

import numpy as np
import pytest
from PIL import Image

from curate.data.reshard import repeat_counts, reshard, train_data
from curate.data.subset import uids_to_u8u8
from tests.unit.pool_fixtures import uid, write_pool


def members(tar_path):
    with tarfile.open(tar_path) as tar:
        return tar.getnames()


def keys_of(out_dir):
    return [
        name[: -len(".jpg")]
        for path in sorted(out_dir.glob("*.tar"))
        for name in members(path)
        if name.endswith(".jpg")
    ]


@pytest.fixture
def pool(tmp_path):
    return write_pool(tmp_path / "pool", samples_per_shard=3, n_samples=6, corrupt={4})


def test_repeats_are_written_with_numbered_keys(tmp_path, pool):
    subset = uids_to_u8u8([uid(0), uid(2), uid(2), uid(2), uid(5)])
    meta = reshard(subset, pool, tmp_path / "out", samples_per_shard=2, shuffle_buffer=0)
    keys = keys_of(tmp_path / "out")
    assert sorted(keys) == sorted([f"{uid(0)}-0", f"{uid(2)}-0", f"{uid(2)}-1", f"{uid(2)}-2", f"{uid(5)}-0"])
    assert meta["written"] == 5 and meta["written_unique"] == 3 and meta["missing_uids"] == 0
    # 5 samples at 2 per shard: shards 0, 1, 2 numbered contiguously, the last one short.
    assert [p.name for p in sorted((tmp_path / "out").glob("*.tar"))] == [
        "00000000.tar",
        "00000001.tar",
        "00000002.tar",
    ]
    assert meta["shard_sizes"] == [2, 2, 1]
    with tarfile.open(tmp_path / "out" / "00000000.tar") as tar:
        names = tar.getnames()
        assert {name.split(".", 1)[1] for name in names} == {"jpg", "txt", "json"}
        sample_json = json.loads(tar.extractfile([n for n in names if n.endswith(".json")][0]).read())
    assert sample_json["uid"] in {uid(0), uid(2)}


def test_a_corrupt_image_is_written_and_a_missing_uid_counted(tmp_path, pool):
    """DataComp's resharder decodes nothing: the sample whose image does not decode is written
    (the trainer skips it); a uid the pool does not hold is missing."""
    subset = uids_to_u8u8([uid(1), uid(4), uid(99)])
    meta = reshard(subset, pool, tmp_path / "out", samples_per_shard=10)
    assert sorted(keys_of(tmp_path / "out")) == [f"{uid(1)}-0", f"{uid(4)}-0"]
    assert meta["missing_uids"] == 1 and meta["missing_examples"] == [uid(99)]
    assert meta["pool_read"] == {"samples": 6, "not_in_subset": 4, "no_json": 0, "bad_json": 0, "bad_uid": 0}
    assert json.loads((tmp_path / "out" / "meta.json").read_text()) == meta


def _tar(path, members):
    """A tar of ``(name, bytes)`` members in this order."""
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_exactly_the_samples_datacomps_resharder_writes_with_every_member_as_bytes(tmp_path):
    """Hand-made pool: a whitespace caption, an undecodable png, an upper-case uid, an extra member
    and a two-dot suffix are written as they are (keys spelled as the sample's uid, suffixes
    lower-cased, members in sorted order, the json's bytes untouched); a sample without a json,
    one with an unparsable json and one whose uid is not hex are not written, and counted."""
    upper = "ABCDEF0123456789ABCDEF0123456789"
    json_a = b'{"uid": "%s", "b": 1,  "a": 2}' % uid(1).encode()  # unusual spacing: kept byte for byte
    pool = _tar(
        tmp_path / "00000000.tar",
        [
            ("k0.jpg", b"jpeg bytes"),
            ("k0.txt", b"   "),  # whitespace caption
            ("k0.json", json_a),
            ("k0.seg.png", b"a mask"),  # extra member, two-dot suffix
            ("k1.PNG", b"not an image"),  # undecodable, upper-case suffix
            ("k1.txt", b"an image"),
            ("k1.json", b'{"uid": "%s"}' % upper.encode()),
            ("k2.jpg", b"x"),
            ("k2.txt", b"no json"),
            ("k3.jpg", b"x"),
            ("k3.json", b"{not json"),
            ("k4.jpg", b"x"),
            ("k4.json", b'{"uid": "not-a-hex-uid"}'),
            ("k5.jpg", b"x"),
            ("k5.json", b'{"uid": "%s"}' % uid(7).encode()),  # not in the subset
        ],
    )
    subset = uids_to_u8u8([uid(1), uid(1), upper.lower(), uid(9)])
    meta = reshard(subset, [pool], tmp_path / "out", samples_per_shard=10)
    with tarfile.open(tmp_path / "out" / "00000000.tar") as tar:
        written = {m.name: tar.extractfile(m).read() for m in tar}
        names = tar.getnames()
    assert names == [
        f"{uid(1)}-0.jpg",
        f"{uid(1)}-0.json",
        f"{uid(1)}-0.seg.png",
        f"{uid(1)}-0.txt",
        f"{uid(1)}-1.jpg",
        f"{uid(1)}-1.json",
        f"{uid(1)}-1.seg.png",
        f"{uid(1)}-1.txt",
        f"{upper}-0.json",
        f"{upper}-0.png",
        f"{upper}-0.txt",
    ]
    assert written[f"{uid(1)}-0.json"] == json_a and written[f"{uid(1)}-1.txt"] == b"   "
    assert written[f"{uid(1)}-0.seg.png"] == b"a mask" and written[f"{upper}-0.png"] == b"not an image"
    assert meta["written"] == 3 and meta["written_unique"] == 2
    assert meta["missing_uids"] == 1  # uid 9
    assert meta["pool_read"] == {"samples": 6, "not_in_subset": 1, "no_json": 1, "bad_json": 1, "bad_uid": 1}


def test_same_seed_same_bytes_and_shuffle_spreads_repeats(tmp_path, pool):
    subset = uids_to_u8u8([uid(0)] * 3 + [uid(1)] * 3 + [uid(2)] * 3)
    digests = []
    for run in ("a", "b"):
        reshard(subset, pool, tmp_path / run, samples_per_shard=100, shuffle_buffer=6, seed=3)
        digests.append(hashlib.sha256((tmp_path / run / "00000000.tar").read_bytes()).hexdigest())
    assert digests[0] == digests[1]
    reshard(subset, pool, tmp_path / "plain", samples_per_shard=100, shuffle_buffer=0)
    plain = keys_of(tmp_path / "plain")
    shuffled = keys_of(tmp_path / "a")
    assert sorted(plain) == sorted(shuffled) and plain != shuffled
    reshard(subset, pool, tmp_path / "other", samples_per_shard=100, shuffle_buffer=6, seed=4)
    assert keys_of(tmp_path / "other") != shuffled


def test_repeat_counts_and_train_data(tmp_path, pool):
    counts = repeat_counts(uids_to_u8u8([uid(3), uid(3), uid(1)]))
    assert counts == {uid(3): 2, uid(1): 1}
    reshard(uids_to_u8u8([uid(0), uid(1), uid(2)]), pool, tmp_path / "out", samples_per_shard=2)
    spec = train_data(tmp_path / "out")
    assert spec.split("::") == [str(tmp_path / "out" / "00000000.tar"), str(tmp_path / "out" / "00000001.tar")]
    empty = tmp_path / "empty"
    reshard(np.zeros(0, dtype="u8,u8"), pool, empty)
    with pytest.raises(ValueError, match="no shards"):
        train_data(empty)


def test_curates_loops_train_on_what_open_clips_loader_would(tmp_path):
    """A reshard holds every sample as the pool has it; the loops read what open_clip's loader
    reads: a sample with a caption and an image member (jpg, png, jpeg or webp, first found in
    that order), an image that decodes; a whitespace caption is trained on, as open_clip does."""
    from curate.training.loop import decode_rgb, read_samples
    from tests.unit.pool_fixtures import jpg_bytes

    png = io.BytesIO()
    Image.new("RGB", (4, 4), (0, 0, 255)).save(png, format="PNG")
    shard = _tar(
        tmp_path / "00000000.tar",
        [
            ("a.jpg", jpg_bytes((255, 0, 0))),
            ("a.txt", b"a red square"),
            ("b.png", png.getvalue()),
            ("b.txt", b" "),
            ("c.jpg", b"not an image"),
            ("c.txt", b"broken"),
            ("d.jpg", jpg_bytes((0, 255, 0))),  # no caption
        ],
    )
    samples = list(read_samples([shard], order_seed=0, shuffle_buffer=1))
    assert sorted(text for _, text, _ in samples) == [" ", "a red square", "broken"]
    decoded = {text: decode_rgb(data) for data, text, _ in samples}
    assert decoded["broken"] is None  # skipped where the loops decode
    assert decoded[" "].getpixel((0, 0)) == (0, 0, 255) and decoded["a red square"].mode == "RGB"
