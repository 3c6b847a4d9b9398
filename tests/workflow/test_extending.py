"""What docs/extending.md promises: a fusion registered in a module of one's own (config
`plugins`) is a fusion of the workflow, and a real pool's chunks are never synthesized."""

import re
import textwrap

import pytest
import yaml

from tests.workflow.conftest import user_config

pytestmark = pytest.mark.workflow

TOY_FUSION = '''
import numpy as np

from curate.selection.fusion import FUSIONS


@FUSIONS.register("toy_max")
def fuse_toy_max(S, stats, fusion):
    """The largest of the scores (a toy)."""
    return np.max(S, axis=1)
'''


def job_counts(result):
    return {k: int(v) for k, v in re.findall(r"^(\w+)\s+(\d+)$", result.stdout + result.stderr, re.M)}


def test_a_fusion_registered_in_a_plugin_selects_a_subset(tmp_path, snakemake_run, monkeypatch):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "toy_fusion.py").write_text(textwrap.dedent(TOY_FUSION))
    monkeypatch.setenv("PYTHONPATH", str(plugins))
    extra = tmp_path / "extra.yaml"
    extra.write_text(
        yaml.safe_dump(
            {
                "plugins": ["toy_fusion"],
                "fusions": {"toy": {"method": "toy_max", "scorers": ["tiny-clip-clean", "tiny-clip-weak"]}},
                "selections": {
                    "toy_top20": {"method": "fused_score", "fusion": "toy", "sampler": "top_fraction", "fraction": 0.2}
                },
            }
        )
    )
    target = "data/subsets/synthetic-tiny/toy_top20.npy"
    result = snakemake_run(tmp_path, "-n", "--quiet", "rules", "--cores", "1", "--", target, configfiles=[extra])
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = job_counts(result)
    assert jobs["fusion_stats"] == 1 and jobs["fuse_chunk"] == 4 and jobs["select_subset"] == 1
    assert jobs["score_chunk"] == 8  # two scorers, four chunks
    # without the plugin the method is unknown, and the error says where
    extra.write_text(extra.read_text().replace("- toy_fusion", "[]").replace("plugins:\n", "plugins: "))
    result = snakemake_run(tmp_path, "-n", "--cores", "1", "--", target, configfiles=[extra])
    assert result.returncode != 0
    assert "fusions.toy.method: unknown fusion method 'toy_max'" in result.stdout + result.stderr


@pytest.mark.parametrize(
    "target", ["data/subsets/datacomp-small/basic_filter.npy", "data/captions/datacomp-small/tiny-blip/00003.parquet"]
)
def test_a_real_pools_chunks_are_downloaded_never_synthesized(tmp_path, snakemake_run, target):
    result = snakemake_run(
        tmp_path, "-n", "--quiet", "rules", "--cores", "1", "--config", "scale=small", "--", target, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = job_counts(result)
    assert "synthesize_pool_chunk" not in jobs
    assert jobs["download_pool_chunk"] == (128 if "subsets" in target else 1)


def test_the_schemas_method_names_are_the_registries():
    """The schema leaves method names to the registries: no enum of them to fall out of date."""
    from curate.workflow.config import REPO

    schema = yaml.safe_load((REPO / "schemas" / "config.schema.yaml").read_text())
    for section in ("scorers", "fusions", "selections", "recipes"):
        entry = schema["properties"][section]["additionalProperties"]
        assert set(entry) <= {"type", "required"}, section
    assert user_config()["plugins"] == []
