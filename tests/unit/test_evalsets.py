import pytest

from curate.evalsets import fetch_eval_task


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
    origin = fetch_eval_task("fairness/geode", task, tmp_path / "o" / "fairness" / "geode",
                             snapshot_download=snapshot_download)
    assert calls == [("djghosh/wds_geode_test", "dataset")] and origin.endswith("djghosh/wds_geode_test")
