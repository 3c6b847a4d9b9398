"""A few hand-made pool shards for the tests of resharding, selection and tables."""

import io

from PIL import Image

from curate.data.shards import ShardWriter


def jpg_bytes(colour, size=(16, 16)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def uid(i: int) -> str:
    return f"{i:032x}"


def write_pool(folder, samples_per_shard=3, n_samples=6, corrupt=(), fixed_time=0.0):
    """Shards of `n_samples` red squares with uids uid(0..); indices in `corrupt` get garbage bytes."""
    paths = []
    for shard_id in range((n_samples + samples_per_shard - 1) // samples_per_shard):
        with ShardWriter(folder, shard_id, samples_per_shard, fixed_time=fixed_time) as writer:
            for i in range(shard_id * samples_per_shard, min((shard_id + 1) * samples_per_shard, n_samples)):
                jpg = b"\xff\xd8 not a jpeg" if i in corrupt else jpg_bytes((200, 10 * i, 0))
                writer.write(jpg, f"a red square number {i}", {"uid": uid(i), "url": f"http://x/{i}.jpg"})
        paths.append(writer.tar_path)
    return paths
