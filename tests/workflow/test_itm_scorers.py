"""MoS's BLIP / BLIP-2 image-text matching scorers in the workflow: a dry run of a selection and a
MoS fusion that use them on a real DataComp pool, and a real run on the tiny pool's first chunk
with tiny ITM models put in place as the fetch rule puts pretrained ones (a Hub-layout folder
copied, an original BLIP checkpoint downloaded from a loopback server and converted)."""

import http.server
import os
import re
import subprocess
import threading

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from tests.workflow.conftest import ROOT, SNAKEMAKE, user_config

pytestmark = pytest.mark.workflow


def job_counts(result):
    return {k: int(v) for k, v in re.findall(r"^(\w+)\s+(\d+)$", result.stdout + result.stderr, re.M)}


def snakemake(tmp_path, config, *args, timeout=900):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    env = dict(
        os.environ,
        HF_HUB_OFFLINE="1",
        NO_ALBUMENTATIONS_UPDATE="1",
        WANDB_MODE="disabled",
        no_proxy="127.0.0.1,localhost",
        NO_PROXY="127.0.0.1,localhost",
    )
    command = [
        SNAKEMAKE,
        "--snakefile",
        str(ROOT / "Snakefile"),
        "--configfile",
        str(tmp_path / "config.yaml"),
        "--directory",
        str(tmp_path),
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, cwd=tmp_path)


def test_dry_run_of_blip_selections_on_a_datacomp_pool(tmp_path):
    """A CLIP-score-style top 20 % by BLIP ITM, MoS over a CLIP, a converted BLIP checkpoint and
    BLIP-2, and MoS's drop-lowest and weighting strategies by one ITM scorer, on datacomp-small:
    each model fetched once, the original checkpoint converted once, every chunk scored by each
    scorer through its own rule (the CLIP's read from DataComp's metadata)."""
    config = user_config()
    config["scale"] = "small"
    config["fusions"]["mos_blip_test"] = {
        "method": "mos",
        "scorers": ["openai-clip-b32", "blip-itm-b16-pt", "blip2-itm-g14-ft"],
        "normalise": "minmax",
        "tmin": 0.5,
        "tmax": 1.5,
    }
    config["selections"]["blip_itm_test_20"] = {"method": "clip_score", "scorer": "blip-itm-l16-ft", "fraction": 0.2}
    config["selections"]["mos_blip_test_20"] = {
        "method": "fused_score",
        "fusion": "mos_blip_test",
        "sampler": "top_fraction",
        "fraction": 0.2,
    }
    # MoS's strategies by one ITM scorer: drop the lowest 20 %, weight every sample
    config["selections"]["drop20_blip2_test"] = {"method": "drop_lowest", "scorer": "blip2-itm-g14-ft", "rho": 0.2}
    config["selections"]["weight_blip_test"] = {"method": "sample_weighting", "scorer": "blip-itm-b16-pt"}
    selections = ("blip_itm_test_20", "mos_blip_test_20", "drop20_blip2_test", "weight_blip_test")
    targets = [f"data/subsets/datacomp-small/{s}.npy" for s in selections]
    result = snakemake(tmp_path, config, "-n", "--quiet", "rules", "--cores", "2", "--", *targets, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = job_counts(result)
    chunks = 128
    assert jobs["itm_score_chunk"] == 3 * chunks  # blip-itm-l16-ft, blip-itm-b16-pt, blip2-itm-g14-ft
    # openai-clip-b32's scores come from DataComp's metadata (the pool's `precomputed`): no model
    assert jobs["metadata_score_chunk"] == chunks and "score_chunk" not in jobs
    # b16-pt's processor is b16-ft's, fetched for it
    assert jobs["fetch_model"] == 4 and jobs["convert_model"] == 1
    assert jobs["select_subset"] == 4 and jobs["fusion_stats"] == 1 and jobs["fuse_chunk"] == chunks

    # the rules' files: the converted folder for the url model, the Hub folder as fetched
    result = snakemake(
        tmp_path,
        config,
        "-n",
        "--printshellcmds",
        "--cores",
        "2",
        "--",
        "data/scores/datacomp-small/blip-itm-b16-pt/00000.parquet",
        "data/scores/datacomp-small/blip2-itm-g14-ft/00000.parquet",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout + result.stderr
    assert "data/models/converted/blip-itm-b16-pt" in out
    assert "data/models/pretrained/blip2-itm-g14-ft" in out and "data/models/converted/blip2" not in out


def test_the_unsupported_blip2_l14_checkpoint_has_no_scorer():
    config = user_config()
    assert "blip2-itm-l14-pt" in config["models"] and "blip2-itm-l14-pt" not in config["scorers"]
    assert "convert" not in config["models"]["blip2-itm-l14-pt"]


@pytest.fixture
def file_server(tmp_path):
    """A loopback HTTP server of the folder tmp_path/served."""
    folder = tmp_path / "served"
    folder.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(folder), **kwargs)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_itm_scorers_score_a_tiny_pool_chunk(tmp_path, file_server):
    """The fetch, convert and ITM score rules for real on chunk 00000 of the tiny pool: a tiny
    BLIP and a tiny BLIP-2 in the Hub's layout (huggingface models whose id is a local folder,
    copied by fetch_model), and the tiny BLIP again as an original checkpoint fetched by url and
    converted; the converted model scores as the original does."""
    from curate.scoring.itm import load_itm_model
    from tests.unit.model_fixtures import build_tiny_blip2_itm, build_tiny_blip_itm
    from tests.unit.test_itm import write_original_checkpoint

    served, url = file_server
    # BLIP's 64-wide heads (the converter's), BLIP's ViT LayerNorm eps
    blip = build_tiny_blip_itm(
        tmp_path / "hub" / "blip", seed=5, image_size=64, hidden=64, heads=1, vision_layer_norm_eps=1e-6
    )
    blip2 = build_tiny_blip2_itm(tmp_path / "hub" / "blip2", seed=6, image_size=64)
    original, _, _ = load_itm_model(blip)
    write_original_checkpoint(original, served / "model_tiny.pth")
    del original
    torch.set_num_threads(1)

    config = user_config()
    config["models"].update(
        {
            "tiny-blip-hub": {"library": "huggingface", "id": str(blip), "sha256": None},
            "tiny-blip2-hub": {"library": "huggingface", "id": str(blip2), "sha256": None},
            "tiny-blip-original": {
                "library": "url",
                "url": f"{url}/model_tiny.pth",
                "sha256": None,
                "convert": "blip_itm",
                "processor": "tiny-blip-hub",
            },
        }
    )
    config["scorers"].update(
        {
            "tiny-blip-itm": {"library": "blip_itm", "source": "pretrained", "model": "tiny-blip-hub", "head": "itm"},
            "tiny-blip-converted-itm": {
                "library": "blip_itm",
                "source": "pretrained",
                "model": "tiny-blip-original",
                "head": "itm",
                "batch_size": 100,
            },
            "tiny-blip2-itc": {"library": "blip_itm", "source": "pretrained", "model": "tiny-blip2-hub", "head": "itc"},
        }
    )
    scorers = ["tiny-blip-itm", "tiny-blip-converted-itm", "tiny-blip2-itc"]
    targets = [f"data/scores/synthetic-tiny/{s}/00000.parquet" for s in scorers]
    result = snakemake(tmp_path, config, "--cores", "2", "--", *targets)
    assert result.returncode == 0, result.stderr[-4000:]
    jobs = result.stdout + result.stderr
    for rule in ("fetch_model", "convert_model", "itm_score_chunk"):
        assert f"rule {rule}:" in jobs or f"localrule {rule}:" in jobs, rule

    from curate.data.scorefiles import load_scores

    data = tmp_path / "data"
    itm = load_scores(data / "scores/synthetic-tiny/tiny-blip-itm/00000.parquet", score_columns=["itm_score"])
    converted = load_scores(
        data / "scores/synthetic-tiny/tiny-blip-converted-itm/00000.parquet", score_columns=["itm_score"]
    )
    itc = load_scores(data / "scores/synthetic-tiny/tiny-blip2-itc/00000.parquet", score_columns=["itc_score"])
    assert list(itm.columns) == ["uid", "itm_score"] and list(itc.columns) == ["uid", "itc_score"]
    assert 900 < len(itm) <= 1000 and list(itm.uid) == list(converted.uid) == list(itc.uid)
    assert ((itm.itm_score >= 0) & (itm.itm_score <= 1)).all() and ((itc.itc_score >= -1) & (itc.itc_score <= 1)).all()
    # the converted checkpoint is the same model, at its own image size, in other batches
    np.testing.assert_allclose(converted.itm_score, itm.itm_score, atol=1e-5)
    report = pd.read_json(data / "scores/synthetic-tiny/tiny-blip2-itc/00000.report.json", typ="series")
    assert report["head"] == "itc" and report["kept"] == len(itc)
