"""The paper's BLIP recipe end to end through salesforce-lavis, as the rehearsal runs it: mos-blip
with rehearsal sizes (2 CPU processes under torchrun, gloo, a few steps) on a tiny synthetic pool,
its initialisations fetched by fetch_model from tiny files in their sources' layouts, the LAVIS
checkpoint converted, the result evaluated on the synthetic-blip suite."""

import json
from pathlib import Path

import pytest
import yaml

from curate.training.lavis_config import LAVIS_VENV
from curate.training.lavis_inits import tiny_bert_folder, tiny_deit_checkpoint
from tests.workflow.conftest import user_config

pytestmark = [
    pytest.mark.workflow,
    pytest.mark.slow,
    pytest.mark.skipif(
        not (LAVIS_VENV / "bin" / "python").is_file(),
        reason="LAVIS's virtualenv .venv-lavis is not built (./setup-lavis.sh, or ./setup.sh --lavis, builds it)",
    ),
]

DEIT_URL = "https://dl.fbaipublicfiles.com/deit/deit_base_patch16_224-b5f2ef4d.pth"
#: every character of the synthetic captions, so the tiny vocabulary covers them
VOCAB_TEXTS = ["the quick brown fox jumps over the lazy dog", "0123456789 , . ' - : ; ! ?", "a red circle on a field"]
#: mos-blip at rehearsal size: only sizes change (and the device: 2 CPU processes, gloo)
REHEARSAL_SIZES = dict(
    image_size=32, queue_size=16, epochs=2, batch_size=8, world_size=2, nodes=1, warmup=2, device="cpu", workers=0
)


def test_mos_blip_trains_in_lavis_converts_and_evaluates(tmp_path, snakemake_run):
    web = tmp_path / "web"
    tiny_deit_checkpoint(web / DEIT_URL.removeprefix("https://"), image_size=32)
    bert = tiny_bert_folder(tmp_path / "offline" / "bert-base-uncased", VOCAB_TEXTS)
    pool = dict(user_config()["pools"]["synthetic-tiny"], n_shards=2, samples_per_shard=16, shards_per_chunk=2)
    config = {
        # where bytes come from: the DeiT URL from a mirror, BERT from a local folder (an offline cluster's)
        "url_mirrors": {"https://": web.as_uri() + "/"},
        "models": {"bert-base-uncased": {"id": str(bert)}},
        "pools": {"lavis-tiny": pool},
        "recipes": {"mos-blip": REHEARSAL_SIZES},
        "suites": {"synthetic-blip": {"n_samples": 40}},
        "threads": 2,
    }
    configfile = tmp_path / "lavis.yaml"
    configfile.write_text(yaml.safe_dump(config))
    target = "data/evals/lavis-tiny/no_filter/mos-blip/synthetic-blip.jsonl"
    result = snakemake_run(tmp_path, "--cores", "2", "--", target, configfiles=[configfile], timeout=1200)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]

    run = tmp_path / "data" / "models" / "lavis-tiny" / "no_filter" / "mos-blip"
    lavis_cfg = yaml.safe_load((run / "lavis_run.yaml").read_text())
    assert lavis_cfg["run"]["world_size"] == 2 and lavis_cfg["run"]["dist_backend"] == "gloo"
    assert lavis_cfg["model"]["vision_init"].endswith("deit_base_patch16_224-b5f2ef4d.pth")
    assert sorted(p.name for p in (run / "train").glob("checkpoint_*.pth")) == ["checkpoint_0.pth", "checkpoint_1.pth"]
    assert "train_loss" in (run / "train" / "log.txt").read_text()
    train_log = next((tmp_path / "data" / "logs" / "train_blip_lavis").rglob("*.log")).read_text()
    assert "torch.distributed.run" in train_log and "--nproc_per_node=2" in train_log
    assert "Train: data epoch: [1]" in train_log  # both epochs ran: 32 samples, 8 a step, 4 steps each

    converted = Path(f"{run}.transformers")
    record = json.loads((converted / "conversion.json").read_text())
    assert record["checkpoint"].endswith("checkpoint_1.pth")
    assert {"retrieval", "captioner"} <= {p.name for p in converted.iterdir()}

    records = [json.loads(line) for line in (tmp_path / target).read_text().splitlines()]
    assert {r["key"] for r in records} == set(user_config()["suites"]["synthetic-blip"]["tasks"])
    for r in records:
        assert r["metrics"]["main_metric"] is not None, r
