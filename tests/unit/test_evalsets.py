import pytest

from curate.data.evalsets import fetch_eval_task


def make_task(folder):
    (folder / "test").mkdir(parents=True)
    (folder / "test" / "nshards.txt").write_text("1\n")


def test_a_local_root_is_linked(tmp_path):
    make_task(tmp_path / "root" / "vtab" / "dtd")
    out = tmp_path / "evalsets" / "datacomp38" / "vtab" / "dtd"
    origin = fetch_eval_task("vtab/dtd", {"type": "classification"}, out, root=tmp_path / "root")
    assert out.is_symlink() and (out / "test" / "nshards.txt").is_file()
    assert origin == str((tmp_path / "root" / "vtab" / "dtd").resolve())
    fetch_eval_task("vtab/dtd", {"type": "classification"}, out, root=tmp_path / "root")  # idempotent


def test_a_root_without_the_task_or_its_layout_raises(tmp_path):
    (tmp_path / "root" / "cars").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="task mnist"):
        fetch_eval_task("mnist", {"type": "classification"}, tmp_path / "o" / "mnist", root=tmp_path / "root")
    with pytest.raises(FileNotFoundError, match="nshards.txt"):
        fetch_eval_task("cars", {"type": "classification"}, tmp_path / "o" / "cars", root=tmp_path / "root")


def test_download_from_the_task_source(tmp_path):
    calls = []

    def snapshot_download(repo_id, repo_type, local_dir):
        calls.append((repo_id, repo_type))
        make_task(tmp_path / local_dir)

    task = {"type": "geode", "source": "djghosh/wds_geode_test"}
    origin = fetch_eval_task(
        "fairness/geode", task, tmp_path / "o" / "fairness" / "geode", snapshot_download=snapshot_download
    )
    assert calls == [("djghosh/wds_geode_test", "dataset")] and origin.endswith("djghosh/wds_geode_test")


def winogavil_split(images_per_instance=(5, 10)):
    """A WinoGAViL-shaped `datasets` split (cue, candidates, associations, candidate_images)."""
    import numpy as np
    from datasets import Dataset, Features, Image, Sequence, Value
    from PIL import Image as PILImage

    rng = np.random.default_rng(0)
    rows = {"cue": [], "candidates": [], "associations": [], "candidate_images": []}
    for i, n in enumerate(images_per_instance):
        candidates = [f"word{i}_{j}" for j in range(n)]
        rows["cue"].append(["Ocean", "fire", "apple", "night"][i % 4])
        rows["candidates"].append(candidates)
        rows["associations"].append(candidates[: 2 + i % 2])
        rows["candidate_images"].append(
            [PILImage.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)) for _ in range(n)]
        )
    features = Features(
        {
            "cue": Value("string"),
            "candidates": Sequence(Value("string")),
            "associations": Sequence(Value("string")),
            "candidate_images": Sequence(Image()),
        }
    )
    return Dataset.from_dict(rows, features=features)


def test_winogavil_is_fetched_as_a_saved_datasets_split(tmp_path):
    calls = []

    def load_dataset(source, split, cache_dir):
        calls.append((source, split))
        return winogavil_split()

    out = tmp_path / "o" / "misc" / "winogavil"
    task = {"type": "winogavil", "source": "nlphuji/winogavil"}
    origin = fetch_eval_task("misc/winogavil", task, out, load_dataset=load_dataset)
    assert calls == [("nlphuji/winogavil", "test")] and "nlphuji/winogavil" in origin
    assert (out / "state.json").is_file()
    # a local root must hold such a split too
    (tmp_path / "root" / "misc" / "winogavil").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="state.json"):
        fetch_eval_task("misc/winogavil", task, tmp_path / "p" / "misc" / "winogavil", root=tmp_path / "root")
