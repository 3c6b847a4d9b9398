"""curate.training.blip: the weighted BLIP losses, the tiny BLIP (transformers), its training and evaluation;
curate.training.lavis_config: what the real trainer hands LAVIS; the tiny suite's VQA task."""

import hashlib
import json
import math
import tarfile

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

import curate.evaluation.blip as eb
import curate.training.blip as cb
from curate.data.evalsets import task_samples
from curate.data.reshard import reshard
from curate.data.subset import uids_to_u8u8
from curate.data.synthetic.tasks import write_suite_task
from curate.data.synthetic.vqa import QUESTIONS, question_for, vqa_accuracy, write_vqa_task
from curate.data.synthetic.world import Scene
from curate.reporting.paper_tables import build_paper_table
from curate.training.lavis_config import per_gpu_batch, read_image_bytes, reshard_index, run_config, torchrun_command
from curate.workflow.config import load_config
from tests.unit.conftest import ROOT
from tests.unit.pool_fixtures import uid, write_pool

torch.set_num_threads(1)

TEXTS = [
    "a red circle on the left",
    "two blue squares in the centre",
    "a green star at the top",
    "four small black crosses",
    "one large white diamond",
    "three orange triangles at the bottom",
]


# ---------------------------------------------------------------------------------------------
# Losses: uniform weights are BLIP's unweighted losses, a zero weight drops the sample


def _features(n=5, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    image = F.normalize(torch.randn(n, d, generator=g), dim=-1)
    text = F.normalize(torch.randn(n, d, generator=g), dim=-1)
    return image, text


def test_itc_uniform_weights_are_blips_loss_and_a_zero_weight_drops_the_sample():
    image, text = _features()
    temp = torch.tensor(0.07)
    sim = image @ text.T / temp
    target = torch.arange(5)
    blip = (F.cross_entropy(sim, target) + F.cross_entropy(sim.T, target)) / 2
    torch.testing.assert_close(cb.itc_loss(image, text, temp, torch.ones(5)), blip)
    torch.testing.assert_close(cb.itc_loss(image, text, temp, torch.full((5,), 3.0)), blip)
    keep = [0, 2, 3, 4]
    dropped = cb.itc_loss(image[keep], text[keep], temp, torch.ones(4))
    torch.testing.assert_close(cb.itc_loss(image, text, temp, torch.tensor([1.0, 0.0, 1.0, 1.0, 1.0])), dropped)


def test_itm_and_lm_uniform_weights_are_blips_means_and_zero_weight_drops():
    g = torch.Generator().manual_seed(1)
    pos, neg_i, neg_t = (torch.randn(4, 2, generator=g) for _ in range(3))
    labels = torch.tensor([1] * 4 + [0] * 8)
    blip_itm = F.cross_entropy(torch.cat([pos, neg_i, neg_t]), labels)
    torch.testing.assert_close(cb.itm_loss(pos, neg_i, neg_t, torch.ones(4)), blip_itm)
    keep = [0, 1, 3]
    torch.testing.assert_close(
        cb.itm_loss(pos, neg_i, neg_t, torch.tensor([2.0, 2.0, 0.0, 2.0])),
        cb.itm_loss(pos[keep], neg_i[keep], neg_t[keep], torch.ones(3)),
    )
    # a sample without a negative pair keeps its positive term only
    only_pos = cb.itm_loss(pos[:1], neg_i[:1], neg_t[:1], torch.ones(1), torch.tensor([False]))
    torch.testing.assert_close(only_pos, F.cross_entropy(pos[:1], torch.tensor([1])))

    logits = torch.randn(3, 6, 11, generator=g)
    lm_labels = torch.tensor([[5, 1, 2, 3, -100, -100], [5, 4, 6, 7, 8, 9], [5, 9, -100, -100, -100, -100]])
    blip_lm = F.cross_entropy(
        logits[:, :-1].reshape(-1, 11), lm_labels[:, 1:].reshape(-1), ignore_index=-100, label_smoothing=0.1
    )
    torch.testing.assert_close(cb.lm_loss(logits, lm_labels, torch.ones(3)), blip_lm)
    torch.testing.assert_close(
        cb.lm_loss(logits, lm_labels, torch.tensor([0.5, 0.0, 0.5])),
        cb.lm_loss(logits[[0, 2]], lm_labels[[0, 2]], torch.ones(2)),
    )
    assert cb.lm_loss(logits, lm_labels, torch.zeros(3)) is None
    assert cb.weighted_mean(torch.ones(3), torch.zeros(3)) is None


def test_hard_negatives_are_other_samples_with_weight():
    image, text = _features(n=6)
    weights = torch.tensor([1.0, 0.0, 1.0, 0.5, 0.0, 1.0])
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        neg_image, neg_text = cb.hard_negatives(image @ text.T / 0.07, weights, g)
        for negatives in (neg_image, neg_text):
            assert all(int(j) != i and weights[int(j)] > 0 for i, j in enumerate(negatives))
    alone = cb.hard_negatives(image @ text.T, torch.tensor([0.0, 1.0, 0.0, 0.0, 0.0, 0.0]), g)
    assert alone[0][1] == -1 and alone[1][1] == -1
    # BLIP draws negatives by similarity: a text nearly identical to image 0's is drawn most
    text_close = text.clone()
    text_close[3] = image[0]
    counts = np.bincount(
        [int(cb.hard_negatives(image @ text_close.T / 0.07, torch.ones(6), g)[1][0]) for _ in range(50)], minlength=6
    )
    assert counts.argmax() == 3


# ---------------------------------------------------------------------------------------------
# The tiny model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    model, processor = cb.build_tiny_blip(TEXTS, seed=0, hidden=32)
    return model, processor


def _batch(processor, n=4):
    from PIL import Image

    rng = np.random.default_rng(0)
    images = [Image.fromarray((rng.random((64, 64, 3)) * 255).astype("uint8")) for _ in range(n)]
    pix = processor.image_processor(images=images, return_tensors="pt")["pixel_values"]
    ids, attn = cb.tokenize(processor, TEXTS[:n])
    return pix, ids, attn


def _deterministic_negatives(sim_i2t, weights, generator=None):
    """The most similar other sample with weight (BLIP draws; this picks the mode)."""
    keep = weights > 0

    def pick(sim):
        s = sim.clone()
        s.fill_diagonal_(-math.inf)
        s[:, ~keep] = -math.inf
        return s.argmax(1)

    return pick(sim_i2t.T), pick(sim_i2t)


def test_tiny_blip_uniform_weights_and_zero_weight_on_the_whole_loss(tiny, monkeypatch):
    model, processor = tiny
    monkeypatch.setattr(cb, "hard_negatives", _deterministic_negatives)
    pix, ids, attn = _batch(processor)
    with torch.no_grad():
        ones = cb.blip_losses(model, pix, ids, attn, torch.ones(4))
        fours = cb.blip_losses(model, pix, ids, attn, torch.full((4,), 4.0))
        zero = cb.blip_losses(model, pix, ids, attn, torch.tensor([1.0, 1.0, 0.0, 1.0]))
        keep = [0, 1, 3]
        width = int(attn[keep].sum(1).max())
        dropped = cb.blip_losses(model, pix[keep], ids[keep][:, :width], attn[keep][:, :width], torch.ones(3))
    for k in ("itc", "itm", "lm", "loss"):
        torch.testing.assert_close(ones[k], fours[k])
        torch.testing.assert_close(zero[k], dropped[k], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ones["loss"], ones["itc"] + ones["itm"] + ones["lm"])
    assert cb.blip_losses(model, pix, ids, attn, torch.zeros(4)) is None


def test_tiny_blip_shares_one_vision_encoder_and_is_saved_and_loaded_back(tiny, tmp_path):
    model, processor = tiny
    assert model.captioner.vision_model is model.retrieval.vision_model
    assert type(model.retrieval).__name__ == "BlipForImageTextRetrieval"
    assert type(model.captioner).__name__ == "BlipForConditionalGeneration"
    cb.save_blip(model, processor, tmp_path / "m")
    loaded, loaded_processor = cb.load_blip(tmp_path / "m")
    assert loaded.captioner.vision_model is loaded.retrieval.vision_model
    assert loaded.enc_token_id == processor.tokenizer.convert_tokens_to_ids("[ENC]") != processor.tokenizer.cls_token_id
    pix, ids, attn = _batch(processor)
    with torch.no_grad():
        torch.testing.assert_close(
            loaded.image_features(loaded.image_embeds(pix)), model.image_features(model.image_embeds(pix))
        )
        torch.testing.assert_close(loaded.text_features(ids, attn), model.text_features(ids, attn))
    with pytest.raises(FileNotFoundError, match="LAVIS checkpoint"):
        cb.load_blip(tmp_path)


def test_step_lr_is_lavis_linear_warmup_step_lr():
    recipe = {"lr": 3e-4, "lr_decay_rate": 0.85, "warmup": 100, "warmup_lr": 1e-6, "min_lr": 1e-6}
    assert cb.step_lr(0, 0, recipe) == pytest.approx(1e-6)
    assert cb.step_lr(50, 0, recipe) == pytest.approx(1e-6 + (3e-4 - 1e-6) / 2)
    assert cb.step_lr(500, 0, recipe) == pytest.approx(3e-4)
    assert cb.step_lr(0, 2, recipe) == pytest.approx(3e-4 * 0.85**2)
    assert cb.step_lr(0, 60, recipe) == pytest.approx(1e-6)  # the floor


def test_training_reads_the_weights_is_deterministic_and_skips_all_zero_batches(tmp_path, monkeypatch):
    pool = write_pool(tmp_path / "pool", samples_per_shard=6, n_samples=12)
    weights = {uid(i): float(i % 3 == 0) for i in range(12)}
    reshard(uids_to_u8u8([uid(i) for i in range(12)]), pool, tmp_path / "reshard", weights=weights)
    recipe = {
        "trainer": "blip",
        "library": "transformers",
        "model": "tiny-blip",
        "tokenizer": {"curated_set": "c"},
        "epochs": 1,
        "batch_size": 3,
        "lr": 1e-3,
        "wd": 0.05,
        "lr_decay_rate": 0.85,
        "warmup": 1,
        "shuffle_buffer": 4,
        "arch": {"hidden": 32},
    }
    seen = []
    original = cb.blip_losses

    def recording(model, pix, ids, attn, batch_weights, generator=None):
        seen.append(batch_weights.clone())
        return original(model, pix, ids, attn, batch_weights, generator)

    monkeypatch.setattr(cb, "blip_losses", recording)
    summary = cb.train_blip(recipe, tmp_path / "reshard", tmp_path / "a", seed=0, tokenizer_texts=TEXTS)
    assert summary["steps"] == 4 and sorted(torch.cat(seen).tolist()) == sorted(weights.values())
    assert summary["skipped_steps"] == sum(1 for w in seen if not w.sum() > 0)
    cb.train_blip(recipe, tmp_path / "reshard", tmp_path / "b", seed=0, tokenizer_texts=TEXTS)
    digest = [hashlib.sha256((tmp_path / d / "retrieval" / "model.safetensors").read_bytes()).hexdigest() for d in "ab"]
    assert digest[0] == digest[1]
    model, _ = cb.load_blip(tmp_path / "a")
    assert cb.TEMP_RANGE[0] <= float(model.temp.detach()) <= cb.TEMP_RANGE[1]


# ---------------------------------------------------------------------------------------------
# Synthetic VQA and the tiny suite's evaluation


def test_vqa_accuracy_is_vqa_v2s():
    assert vqa_accuracy("red", ["red"] * 10) == 1.0
    assert vqa_accuracy("Red.", ["red"] * 10) == 1.0
    assert vqa_accuracy("blue", ["red"] * 10) == 0.0
    # two of ten annotators: (2 x 1/3 + 8 x 2/3) / 10
    assert vqa_accuracy("blue", ["blue"] * 2 + ["red"] * 8) == pytest.approx(0.6)
    assert vqa_accuracy("blue", ["blue"] * 3 + ["red"] * 7) == pytest.approx(0.9)
    with pytest.raises(ValueError):
        vqa_accuracy("red", [])


def test_vqa_questions_come_from_the_ground_truth(tmp_path):
    scene = Scene("circle", "red", 2, "small", "left", "stripes")
    q = question_for(scene, "colour")
    assert (
        q["answer"] == "red" and q["answers"] == ["red"] * 10 and q["candidates"][q["candidates"].index("red")] == "red"
    )
    assert q["statements"][q["candidates"].index("red")] == "two small red circles on the left on a striped background"
    assert (
        q["statements"][q["candidates"].index("blue")] == "two small blue circles on the left on a striped background"
    )
    assert question_for(scene, "count")["answer"] == "two"
    assert question_for(scene, "background")["answer"] == "striped"
    summary = write_vqa_task(tmp_path / "a", 24, seed=3)
    write_vqa_task(tmp_path / "b", 24, seed=3)
    assert (tmp_path / "a/test/0.tar").read_bytes() == (tmp_path / "b/test/0.tar").read_bytes()
    assert summary["n_samples"] == 24 and (tmp_path / "a/dataset_type.txt").read_text().strip() == "synthetic_vqa"
    samples = task_samples(tmp_path / "a")
    questions = [json.loads(s["json"]) for s in samples]
    assert sorted({q["question_type"] for q in questions}) == sorted(QUESTIONS)
    assert all(np.bincount([list(QUESTIONS).index(q["question_type"]) for q in questions]) == 4)
    for q in questions:
        assert q["answer"] in q["candidates"] and len(set(q["statements"])) == len(q["candidates"])


def test_suite_tasks_by_type(tmp_path):
    captions = write_suite_task(tmp_path / "captions", "captions", {"type": "captioning"}, 5, seed=1)
    write_suite_task(tmp_path / "retrieval", "retrieval", {"type": "retrieval"}, 5, seed=1)
    assert captions["type"] == "captioning"
    assert (tmp_path / "captions/test/0.tar").read_bytes() == (tmp_path / "retrieval/test/0.tar").read_bytes()
    assert write_suite_task(tmp_path / "vqa", "vqa", {"type": "synthetic_vqa"}, 6, seed=1)["type"] == "synthetic_vqa"
    nlvr = write_suite_task(tmp_path / "nlvr", "nlvr", {"type": "nlvr"}, 6, seed=1, n_train_samples=4)
    assert (nlvr["n_test"], nlvr["n_train"]) == (6, 4) and (tmp_path / "nlvr/train/nshards.txt").is_file()
    assert write_suite_task(tmp_path / "ref", "ref", {"type": "refcoco"}, 3, seed=1)["n_train"] == 3


def test_the_tiny_suite_evaluates_every_task(tiny, tmp_path):
    model, processor = tiny
    cb.save_blip(model, processor, tmp_path / "model")
    suite = load_config(ROOT)["suites"]["synthetic-blip"]
    tasks = {}
    for key, spec in suite["tasks"].items():
        write_suite_task(tmp_path / key, key, spec, 12, seed=5, n_train_samples=8)
        tasks[key] = dict(spec, dir=tmp_path / key)
        if spec["type"] in ("vqa", "nlvr", "refcoco"):  # the suite's 4 epochs, in batches the 8 samples fill
            tasks[key]["batch_size"] = 4
    records = eb.evaluate_blip_suite(tmp_path / "model", tasks, batch_size=8)
    by_key = {r["key"]: r["metrics"] for r in records}
    assert list(by_key) == list(suite["tasks"])
    assert 0 <= by_key["retrieval"]["main_metric"] == by_key["retrieval"]["mean_recall@1"] <= 1
    assert by_key["objects"]["n_classes"] == 48 and 0 <= by_key["objects"]["acc1"] <= 1
    assert by_key["captions"]["main_metric"] >= 0 and len(by_key["captions"]["examples"]) == 5
    assert 0 <= by_key["vqa"]["vqa_accuracy"] <= 1 and by_key["vqa"]["n_questions"] == 12
    assert by_key["nlvr"]["n_pairs"] == by_key["refcoco"]["n_expressions"] == 12
    assert {by_key[k]["finetune_steps"] for k in ("vqa", "nlvr", "refcoco")} == {4 * 2}


def test_statement_ranking_prefers_what_the_decoder_learned(tiny):
    """The log-likelihood ranking is the decoder's: after fitting one statement, it ranks first."""
    from transformers import BlipForConditionalGeneration, BlipForImageTextRetrieval

    model, processor = tiny
    fresh = cb.TinyBlip(
        BlipForImageTextRetrieval(model.retrieval.config), BlipForConditionalGeneration(model.captioner.config)
    )
    fresh.enc_token_id = model.enc_token_id
    pix, _, _ = _batch(processor, n=1)
    statements = ["a red circle on the left", "a blue circle on the left"]
    ids, attn = cb.tokenize(processor, statements[:1])
    opt = torch.optim.Adam(fresh.parameters(), lr=1e-2)
    for _ in range(30):
        logits, labels = fresh.decoder_logits(ids, attn, fresh.image_embeds(pix))
        loss = cb.lm_loss(logits, labels, torch.ones(1), label_smoothing=0.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        ll = eb.statement_log_likelihoods(fresh, processor, fresh.image_embeds(pix), statements)
    assert ll[0] > ll[1]


def test_paper_tables_read_the_tiny_suites_records():
    config = load_config(ROOT)
    papers = yaml.safe_load((ROOT / "papers" / "mos.yaml").read_text())
    table = papers["tables"]["table3"] if "tables" in papers else papers["table3"]
    records = [
        {
            "key": "retrieval",
            "metrics": {"main_metric": 0.5, "text_retrieval_recall@1": 0.4, "image_retrieval_recall@1": 0.6},
        },
        {"key": "objects", "metrics": {"main_metric": 0.25, "acc1": 0.25}},
        {"key": "captions", "metrics": {"main_metric": 1.234, "cider": 1.234}},
        {"key": "vqa", "metrics": {"main_metric": 0.7, "vqa_accuracy": 0.7}},
        {"key": "nlvr", "metrics": {"main_metric": 0.55, "accuracy": 0.55}},
        {"key": "refcoco", "metrics": {"main_metric": 0.625, "accuracy": 0.625}},
    ]
    row = {
        "label": "- | -",
        "scale": "tiny",
        "selection": "no_filter",
        "runs_as": "no_filter",
        "pool": "synthetic-tiny",
        "recipe": "tiny-mos-blip",
        "suite": "synthetic-blip",
        "stand_ins": "",
        "built": True,
        "comparable": False,
        "status": "stand-in",
        "evaluation": "e.jsonl",
    }
    one_row = dict(table, rows=table["rows"][:1])
    frame = build_paper_table(one_row, [row], {"e.jsonl": records}, config["suites"]).iloc[0]
    assert frame["flickr_i2t_reproduced"] == pytest.approx(40.0) and frame["coco_t2i_reproduced"] == pytest.approx(60.0)
    assert frame["imagenet_reproduced"] == pytest.approx(25.0) and frame["vqa_reproduced"] == pytest.approx(70.0)
    assert frame["coco_caption_reproduced"] == pytest.approx(123.4)
    assert frame["nlvr_reproduced"] == pytest.approx(55.0) and frame["refcoco_plus_reproduced"] == pytest.approx(62.5)
    assert frame["imagenet_r_reproduced"] is None or math.isnan(frame["imagenet_r_reproduced"])
    assert set(config["suites"]["mos-blip"]["paper_metrics"]) == {c["metric"] for c in table["columns"]}


# ---------------------------------------------------------------------------------------------
# The real trainer's LAVIS run


def test_lavis_run_config_carries_the_recipes_numbers(tmp_path):
    recipe = load_config(ROOT)["recipes"]["mos-blip"]
    cfg = run_config(recipe, tmp_path / "reshard", tmp_path / "out", 0, tmp_path / "deit.pth", tmp_path / "bert")
    run, model = cfg["run"], cfg["model"]
    assert model["vision_init"] == str((tmp_path / "deit.pth").resolve())
    assert model["text_init"] == str((tmp_path / "bert").resolve())
    assert run["dist_backend"] == "nccl" and run["device"] == "cuda"
    cpu = run_config(
        dict(recipe, device="cpu", world_size=2, nodes=1, batch_size=8, queue_size=16), "r", "o", 0, "v", "t"
    )
    assert cpu["run"]["dist_backend"] == "gloo" and cpu["run"]["batch_size_train"] == 4
    assert model["arch"] == "weighted_blip_pretrain" and model["model_type"] == "base"
    assert model["load_pretrained"] is False and model["image_size"] == 224
    assert run["task"] == "image_text_pretrain" and run["lr_sched"] == "linear_warmup_step_lr"
    assert run["init_lr"] == 3e-4 and run["lr_decay_rate"] == 0.85 and run["weight_decay"] == 0.05
    assert run["max_epoch"] == 20 and run["batch_size_train"] * run["world_size"] == 1260
    assert model["queue_size"] % 1260 == 0
    assert cfg["datasets"]["weighted_reshard"]["build_info"]["storage"] == str((tmp_path / "reshard").resolve())
    assert yaml.safe_load(yaml.safe_dump(cfg)) == cfg
    with pytest.raises(ValueError, match="split over"):
        per_gpu_batch(dict(recipe, world_size=16))
    with pytest.raises(ValueError, match="queue_size"):
        run_config(dict(recipe, queue_size=57600), tmp_path, tmp_path, 0, "v", "t")
    one_node = torchrun_command(dict(recipe, nodes=1), "run.yaml", python="/venv/bin/python")
    assert one_node[:6] == [
        "/venv/bin/python",
        "-m",
        "torch.distributed.run",
        "--nnodes=1",
        "--nproc_per_node=14",
        "--standalone",
    ]
    assert one_node[-4:] == ["-m", "curate.training.lavis_blip", "--cfg-path", "run.yaml"]
    two = torchrun_command(recipe, "run.yaml", rdzv_endpoint="node1:29500")
    assert "--nproc_per_node=7" in two and "--rdzv-endpoint=node1:29500" in two
    with pytest.raises(ValueError, match="rendezvous"):
        torchrun_command(recipe, "run.yaml")


def test_lavis_reads_the_reshard_with_its_weights(tmp_path):
    pool = write_pool(tmp_path / "pool", samples_per_shard=4, n_samples=8)
    weights = {uid(i): 0.125 * i for i in range(8)}
    reshard(uids_to_u8u8([uid(i) for i in range(8)]), pool, tmp_path / "reshard", weights=weights)
    index = reshard_index(tmp_path / "reshard")
    assert len(index) == 8 and sorted(e["weight"] for e in index) == sorted(weights.values())
    with tarfile.open(index[0]["shard"]) as tar:
        jpgs = {m.name: tar.extractfile(m).read() for m in tar if m.name.endswith(".jpg")}
    assert read_image_bytes(index[0]) in jpgs.values()
    reshard(uids_to_u8u8([uid(i) for i in range(8)]), pool, tmp_path / "plain")
    assert {e["weight"] for e in reshard_index(tmp_path / "plain")} == {1.0}


def test_lavis_is_imported_only_by_the_module_run_in_its_env():
    import re

    pattern = re.compile(r"^\s*(from|import)\s+(lavis\b|curate\.lavis_blip\b|\.lavis_blip\b)", re.M)
    users = [
        p.name
        for folder in ("curate", "scripts", "tests")
        for p in (ROOT / folder).rglob("*.py")
        if pattern.search(p.read_text())
    ]
    assert users == ["lavis_blip.py"]


# ---------------------------------------------------------------------------------------------
# Config


@pytest.mark.parametrize(
    "mutate, key",
    [
        (lambda c: c["recipes"]["tiny-mos-blip"].pop("lr_decay_rate"), "lr_decay_rate"),
        (lambda c: c["recipes"]["tiny-mos-blip"].pop("tokenizer"), "tokenizer"),
        (lambda c: c["recipes"]["mos-blip"].pop("world_size"), "world_size"),
        (lambda c: c["recipes"]["mos-blip"].update(library="open_clip"), "open_clip"),
        (lambda c: c["suites"]["mos-blip"]["tasks"]["nlvr2"].update(type="reasoning"), "reasoning"),
        (
            lambda c: c["recipes"]["tiny-mos-blip"]["tokenizer"].update(curated_set="nope"),
            r"recipes\.tiny-mos-blip\.tokenizer\.curated_set",
        ),
        (lambda c: c["recipes"]["mos-blip"].update(vision_init="nope"), r"recipes\.mos-blip\.vision_init"),
        (lambda c: c["recipes"]["mos-blip"].pop("text_init"), "text_init"),
        (lambda c: c["recipes"]["mos-blip"].update(backend="mpi"), "backend"),
        # curate's own loops run one process: only torchrun launchers take a world size
        (
            lambda c: c["recipes"]["tiny-mos-blip"].update(world_size=2),
            r"recipes\.tiny-mos-blip\.world_size.*one process",
        ),
        (lambda c: c["recipes"]["mos-clip"].update(world_size=8), r"recipes\.mos-clip\.world_size.*one process"),
        (lambda c: c["recipes"]["mos-llava"].update(nodes=2), r"recipes\.mos-llava\.world_size.*one process"),
    ],
)
def test_blip_config_errors_name_the_key(user_config, mutate, key):
    from curate.registry import ConfigError
    from curate.workflow.config import check_config

    mutate(user_config)
    with pytest.raises(ConfigError, match=key):
        check_config(user_config)


def test_distributed_backend_follows_the_device(config):
    from curate.training.trainers import dist_backend

    blip = config["recipes"]["mos-blip"]
    assert dist_backend(blip) == "nccl"
    assert dist_backend(dict(blip, device="cpu")) == "gloo"
    assert dist_backend(dict(blip, device="cpu", backend="nccl")) == "nccl"


def test_blip_entries(config):
    blip = config["recipes"]["mos-blip"]
    assert (blip["epochs"], blip["batch_size"], blip["lr"], blip["wd"], blip["lr_decay_rate"]) == (
        20,
        1260,
        3e-4,
        0.05,
        0.85,
    )
    assert (
        blip["tiny_analogue"] == "tiny-mos-blip" and config["suites"]["mos-blip"]["tiny_analogue"] == "synthetic-blip"
    )
