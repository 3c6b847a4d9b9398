"""BLIP / BLIP-2 image-text matching scorers (curate/scoring/itm.py) on tiny models built here, saved with
save_pretrained and loaded back through the scorer's own loader, and the conversion of original
BLIP checkpoints."""

import io
import json
import os
import time

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(1)

from curate.data.scorefiles import load_scores, save_scores  # noqa: E402
from curate.data.shards import ShardWriter  # noqa: E402
from curate.scoring.itm import (  # noqa: E402
    blip2_inputs,
    blip_inputs,
    blip_key_to_transformers,
    convert_blip_checkpoint,
    convert_model,
    itm_scores,
    load_itm_model,
    load_original_state_dict,
    model_family,
    score_chunk_itm,
)
from tests.unit.model_fixtures import (  # noqa: E402
    build_tiny_blip2_itm,
    build_tiny_blip_itm,
    transformers_key_to_blip,
)

COLOURS = [(200, 20, 20), (20, 20, 200), (20, 180, 20), (220, 220, 30), (90, 90, 90)]
TEXTS = [
    "a red circle on a blue field",
    "two green squares",
    "a photo of a yellow triangle and a much longer caption that runs past the text limit of the model " * 3,
    "cat",
    "text written on a wall",
]


def images(n=5, size=40):
    return [Image.new("RGB", (size, size + 7 * i), COLOURS[i % len(COLOURS)]) for i in range(n)]


@pytest.fixture(scope="module")
def blip_dir(tmp_path_factory):
    return build_tiny_blip_itm(tmp_path_factory.mktemp("blip"))


@pytest.fixture(scope="module")
def blip2_dir(tmp_path_factory):
    return build_tiny_blip2_itm(tmp_path_factory.mktemp("blip2"))


def test_the_folder_says_its_family(blip_dir, blip2_dir, tmp_path):
    assert model_family(blip_dir) == "blip" and model_family(blip2_dir) == "blip2"
    with pytest.raises(FileNotFoundError, match="convert"):
        model_family(tmp_path)


def test_blip_itm_is_the_softmax_of_the_itm_head_with_enc_first(blip_dir):
    model, processor, family = load_itm_model(blip_dir)
    scores = itm_scores(model, processor, family, images(), TEXTS, "itm")
    assert scores.dtype == np.float32 and scores.shape == (5,)
    assert ((scores > 0) & (scores < 1)).all() and np.ptp(scores) > 1e-3
    inputs = blip_inputs(processor, images(), TEXTS, "itm", model.config.text_config)
    # BLIP's ITM reads [ENC] where the tokenizer put [CLS]; text cut at 35 tokens
    assert (inputs["input_ids"][:, 0] == processor.tokenizer.convert_tokens_to_ids("[ENC]")).all()
    assert inputs["input_ids"].shape[1] == 35
    with torch.no_grad():
        logits = model(
            input_ids=inputs["input_ids"],
            pixel_values=inputs["pixel_values"],
            attention_mask=inputs["attention_mask"],
            use_itm_head=True,
        ).itm_score
    np.testing.assert_allclose(scores, torch.softmax(logits, dim=1)[:, 1].numpy(), rtol=0, atol=1e-6)


class _Vocab:
    def __init__(self, vocab):
        self.vocab = vocab

    def get_vocab(self):
        return dict(self.vocab)


def test_enc_is_the_token_after_dec_when_the_tokenizer_does_not_list_it():
    from types import SimpleNamespace

    from curate.scoring.itm import enc_token_id

    text_config = SimpleNamespace(vocab_size=30524, bos_token_id=30522)
    bert = {f"w{i}": i for i in range(30522)}
    assert enc_token_id(_Vocab({**bert, "[DEC]": 30522, "[ENC]": 30523}), text_config) == 30523
    assert enc_token_id(_Vocab({**bert, "[DEC]": 30522}), text_config) == 30523
    assert enc_token_id(_Vocab(bert), text_config) == 30523  # [DEC] from the config's bos
    with pytest.raises(ValueError, match="another token"):
        enc_token_id(_Vocab({**bert, "[DEC]": 30522, "x": 30523}), text_config)
    with pytest.raises(ValueError, match="outside"):
        enc_token_id(_Vocab({**bert, "[DEC]": 30522}), SimpleNamespace(vocab_size=30523, bos_token_id=30522))


def test_blip_itc_is_the_pairs_cosine(blip_dir):
    model, processor, family = load_itm_model(blip_dir)
    scores = itm_scores(model, processor, family, images(), TEXTS, "itc")
    inputs = blip_inputs(processor, images(), TEXTS, "itc", model.config.text_config)
    assert (inputs["input_ids"][:, 0] == processor.tokenizer.cls_token_id).all()
    with torch.no_grad():
        matrix = model(
            input_ids=inputs["input_ids"],
            pixel_values=inputs["pixel_values"],
            attention_mask=inputs["attention_mask"],
            use_itm_head=False,
        ).itm_score
    np.testing.assert_allclose(scores, torch.diagonal(matrix).numpy(), rtol=0, atol=1e-6)
    assert (np.abs(scores) <= 1 + 1e-6).all()


def test_blip2_itm_is_the_softmax_of_the_query_averaged_head(blip2_dir):
    model, processor, family = load_itm_model(blip2_dir)
    scores = itm_scores(model, processor, family, images(), TEXTS, "itm")
    assert ((scores > 0) & (scores < 1)).all() and np.ptp(scores) > 1e-3
    inputs = blip2_inputs(processor, images(), TEXTS, model.config)
    assert inputs["input_ids"].shape[1] == 32
    with torch.no_grad():
        logits = model(**inputs, use_image_text_matching_head=True).logits_per_image
    np.testing.assert_allclose(scores, torch.softmax(logits, dim=1)[:, 1].numpy(), rtol=0, atol=1e-6)


def test_blip2_itc_is_the_max_over_query_tokens(blip2_dir):
    model, processor, family = load_itm_model(blip2_dir)
    scores = itm_scores(model, processor, family, images(), TEXTS, "itc")
    inputs = blip2_inputs(processor, images(), TEXTS, model.config)
    # directly from the parts: every query's projected output against the projected text [CLS]
    with torch.no_grad():
        image_embeds = model.vision_model(pixel_values=inputs["pixel_values"]).last_hidden_state
        queries = model.query_tokens.expand(len(image_embeds), -1, -1)
        query_out = model.qformer(
            query_embeds=queries,
            encoder_hidden_states=image_embeds,
            encoder_attention_mask=torch.ones(image_embeds.shape[:-1], dtype=torch.long),
        ).last_hidden_state
        text_out = model.qformer(
            query_embeds=model.embeddings(input_ids=inputs["input_ids"]),
            query_length=0,
            attention_mask=inputs["attention_mask"],
        ).last_hidden_state
        image_feats = torch.nn.functional.normalize(model.vision_projection(query_out), dim=-1)
        text_feat = torch.nn.functional.normalize(model.text_projection(text_out[:, 0]), dim=-1)
        per_query = torch.einsum("bqd,bd->bq", image_feats, text_feat)
    assert per_query.shape == (5, model.config.num_query_tokens)
    np.testing.assert_allclose(scores, per_query.max(dim=1).values.numpy(), rtol=0, atol=1e-6)
    # the max, not the mean nor the first query
    assert (per_query.max(dim=1).values > per_query.mean(dim=1) + 1e-4).all()


def test_blip2_with_image_tokens_in_the_text_scores_the_same(blip2_dir, tmp_path):
    """Hub BLIP-2 configs may set image_token_index (the processor puts one image token per query
    before the text); the model drops them again, the scores do not change."""
    model, processor, family = load_itm_model(blip2_dir)
    plain = {head: itm_scores(model, processor, family, images(), TEXTS, head) for head in ("itm", "itc")}
    model.config.image_token_index = processor.tokenizer.convert_tokens_to_ids("<image>")
    inputs = blip2_inputs(processor, images(), TEXTS, model.config)
    assert (inputs["input_ids"][:, :4] == model.config.image_token_index).all()
    for head in ("itm", "itc"):
        np.testing.assert_allclose(itm_scores(model, processor, family, images(), TEXTS, head), plain[head], atol=1e-6)


def test_unknown_head_raises(blip_dir):
    model, processor, family = load_itm_model(blip_dir)
    with pytest.raises(ValueError, match="head"):
        itm_scores(model, processor, family, images(), TEXTS, "cosine")


# ---- A chunk of pool shards ---------------------------------------------------------------------


def jpg(colour, size=48):
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def uid(i):
    return f"{i:032x}"


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    """Two shards, 7 samples: #2 has a corrupt image, #5 an empty caption."""
    folder = tmp_path_factory.mktemp("pool")
    rows = []
    i = 0
    for shard_id, n in ((0, 4), (1, 3)):
        with ShardWriter(folder, shard_id, 4, fixed_time=0.0) as writer:
            for _ in range(n):
                data = b"\xff\xd8 not a jpeg" if i == 2 else jpg(COLOURS[i % 5])
                text = "" if i == 5 else TEXTS[i % 5]
                writer.write(data, text, {"uid": uid(i)})
                rows.append((uid(i), data, text))
                i += 1
    return sorted(folder.glob("*.tar")), rows


@pytest.mark.parametrize("which, head", [("blip", "itm"), ("blip", "itc"), ("blip2", "itm"), ("blip2", "itc")])
def test_score_chunk_writes_the_scorers_column_in_the_clip_score_format(
    blip_dir, blip2_dir, pool, tmp_path, which, head
):
    folder = blip_dir if which == "blip" else blip2_dir
    paths, rows = pool
    df, report = score_chunk_itm(folder, paths, head=head, batch_size=2)
    kept = [r for r in rows if r[0] not in (uid(2), uid(5))]
    column = f"{head}_score"
    assert list(df.columns) == ["uid", column] and df[column].dtype == np.float32
    assert list(df.uid) == [r[0] for r in kept]
    assert report["kept"] == 5 and report["skipped"]["corrupt_image"] == 1 and report["skipped"]["empty_caption"] == 1
    assert report["skipped"]["nan_score"] == 0 and report["head"] == head
    # the same scores as scoring the decoded samples directly, whatever the batch size
    model, processor, family = load_itm_model(folder)
    direct = itm_scores(
        model,
        processor,
        family,
        [Image.open(io.BytesIO(r[1])).convert("RGB") for r in kept],
        [r[2] for r in kept],
        head,
    )
    np.testing.assert_allclose(df[column].to_numpy(), direct, atol=1e-5)
    np.testing.assert_allclose(score_chunk_itm(folder, paths, head=head, batch_size=5)[0][column], direct, atol=1e-5)
    if head == "itm":
        assert ((df[column] >= 0) & (df[column] <= 1)).all()
    path = save_scores(df, tmp_path / "00000.parquet", score_columns=[column])
    back = load_scores(path, score_columns=[column])
    pd.testing.assert_frame_equal(back, df)
    import pyarrow.parquet as pq

    assert str(pq.read_schema(path)).startswith("uid: string\n" + f"{column}: float")


def test_tiny_itm_throughput_on_cpu(blip_dir, blip2_dir, tmp_path):
    """Samples per second of the tiny scorers on one CPU thread (printed; run with -s to see)."""
    writer_dir = tmp_path / "shards"
    writer_dir.mkdir()
    with ShardWriter(writer_dir, 0, 256, fixed_time=0.0) as writer:
        for i in range(256):
            writer.write(jpg(COLOURS[i % 5], size=64), TEXTS[i % 5], {"uid": uid(i)})
    for name, folder in (("blip", blip_dir), ("blip2", blip2_dir)):
        for head in ("itm", "itc"):
            start = time.perf_counter()
            df, _ = score_chunk_itm(folder, sorted(writer_dir.glob("*.tar")), head=head, batch_size=64)
            rate = len(df) / (time.perf_counter() - start)
            print(f"tiny {name} {head}: {rate:.0f} samples/s on 1 CPU thread (256 samples, batch 64)")
            assert len(df) == 256


# ---- Original BLIP checkpoints ---------------------------------------------------------------


@pytest.mark.parametrize(
    "key, expected",
    [
        ("visual_encoder.cls_token", "vision_model.embeddings.class_embedding"),
        ("visual_encoder.pos_embed", "vision_model.embeddings.position_embedding"),
        ("visual_encoder.patch_embed.proj.weight", "vision_model.embeddings.patch_embedding.weight"),
        ("visual_encoder.blocks.11.attn.qkv.weight", "vision_model.encoder.layers.11.self_attn.qkv.weight"),
        ("visual_encoder.blocks.0.attn.proj.bias", "vision_model.encoder.layers.0.self_attn.projection.bias"),
        ("visual_encoder.blocks.3.norm1.weight", "vision_model.encoder.layers.3.layer_norm1.weight"),
        ("visual_encoder.blocks.3.norm2.bias", "vision_model.encoder.layers.3.layer_norm2.bias"),
        ("visual_encoder.blocks.3.mlp.fc2.weight", "vision_model.encoder.layers.3.mlp.fc2.weight"),
        ("visual_encoder.norm.weight", "vision_model.post_layernorm.weight"),
        (
            "text_encoder.encoder.layer.2.crossattention.self.query.weight",
            "text_encoder.encoder.layer.2.crossattention.self.query.weight",
        ),
        ("text_encoder.embeddings.LayerNorm.weight", "text_encoder.embeddings.LayerNorm.weight"),
        ("itm_head.weight", "itm_head.weight"),
        ("vision_proj.bias", "vision_proj.bias"),
    ],
)
def test_blip_keys_are_renamed_as_transformers_conversion_script_does(key, expected):
    assert blip_key_to_transformers(key) == expected
    assert transformers_key_to_blip(expected) == key


def write_original_checkpoint(model, path):
    """``{'model': state_dict, ...}`` as salesforce/BLIP saves its checkpoints, under BLIP's key
    names, with what a pretraining checkpoint holds besides the ITM model (momentum encoders, the
    decoder, the queues, BERT's position_ids buffer, the temperature)."""
    state = {transformers_key_to_blip(k): v.clone() for k, v in model.state_dict().items()}
    for k in [k for k in state if k.startswith(("visual_encoder.blocks.0.", "text_encoder.encoder.layer.0."))]:
        state[k.replace("visual_encoder", "visual_encoder_m").replace("text_encoder", "text_encoder_m")] = state[k] + 1
    state["text_decoder.cls.predictions.bias"] = torch.zeros(7)
    state["image_queue"] = torch.randn(16, 8)
    state["text_queue"] = torch.randn(16, 8)
    state["idx_queue"] = torch.zeros(1, 8)
    state["temp"] = torch.tensor(0.07)
    state["text_encoder.embeddings.position_ids"] = torch.arange(40)[None]
    state["vision_proj_m.weight"] = state["vision_proj.weight"] * 2
    torch.save({"model": state, "config": {"image_size": 32, "vit": "base"}, "epoch": 19}, path)
    return state


def test_an_original_blip_checkpoint_converts_to_the_same_scores(tmp_path):
    # tiny heads are 16 wide (BLIP's are 64)
    original_dir = build_tiny_blip_itm(tmp_path / "original", seed=3, vision_layer_norm_eps=1e-6)
    # the processor comes from another folder, at another image size (the Hub's 384 vs 224)
    processor_dir = build_tiny_blip_itm(tmp_path / "processor", seed=4, image_size=48)
    original, processor, family = load_itm_model(original_dir)
    write_original_checkpoint(original, tmp_path / "model_base.pth")
    assert set(load_original_state_dict(tmp_path / "model_base.pth")) >= {"visual_encoder.cls_token", "temp"}

    record = convert_blip_checkpoint(tmp_path / "model_base.pth", tmp_path / "converted", processor_dir, head_dim=16)
    assert record["image_size"] == 32 and record["dropped"] > 0
    assert set(record["dropped_prefixes"]) == {
        "visual_encoder_m",
        "text_encoder_m",
        "text_decoder",
        "image_queue",
        "text_queue",
        "idx_queue",
        "temp",
        "vision_proj_m",
        "text_encoder",
    }
    assert json.loads((tmp_path / "converted" / "conversion.json").read_text()) == record
    converted, converted_processor, converted_family = load_itm_model(tmp_path / "converted")
    assert converted_family == "blip"
    assert converted.config.vision_config.num_hidden_layers == original.config.vision_config.num_hidden_layers
    assert converted.config.vision_config.layer_norm_eps == 1e-6
    assert converted_processor.image_processor.size == {"height": 32, "width": 32}
    for head in ("itm", "itc"):
        np.testing.assert_allclose(
            itm_scores(converted, converted_processor, "blip", images(), TEXTS, head),
            itm_scores(original, processor, family, images(), TEXTS, head),
            rtol=0,
            atol=1e-6,
        )
    for key, value in original.state_dict().items():
        torch.testing.assert_close(converted.state_dict()[key], value, rtol=0, atol=0)


def test_convert_model_reads_the_fetched_file_and_a_missing_weight_raises(tmp_path):
    original_dir = build_tiny_blip_itm(tmp_path / "original", seed=3, vision_layer_norm_eps=1e-6)
    original, _, _ = load_itm_model(original_dir)
    fetched = tmp_path / "fetched"
    fetched.mkdir()
    state = write_original_checkpoint(original, fetched / "model_large.pth")
    (fetched / "fetch.json").write_text(json.dumps({"file": "model_large.pth"}))
    entry = {
        "library": "url",
        "url": "https://example.org/model_large.pth",
        "convert": "blip_itm",
        "processor": "p",
        "sha256": None,
    }
    record = convert_model(entry, fetched, tmp_path / "converted", original_dir, head_dim=16)
    assert record["checkpoint"].endswith("model_large.pth") and (tmp_path / "converted" / "config.json").is_file()
    with pytest.raises(ValueError, match="conversion"):
        convert_model({**entry, "convert": "lavis_blip2"}, fetched, tmp_path / "other", original_dir)
    del state["itm_head.weight"]
    torch.save({"model": state}, fetched / "model_large.pth")
    with pytest.raises(ValueError, match="itm_head.weight"):
        convert_model(entry, fetched, tmp_path / "broken", original_dir, head_dim=16)


# ---- Config ---------------------------------------------------------------------------------


def test_the_configured_itm_scorers_write_their_heads_column(config):
    from curate.scoring.kinds import score_column
    from curate.workflow.workspace import Workspace

    heads = {  # the papers' ITM models (the bench scale trains its own: `source: train`)
        name: entry["head"]
        for name, entry in config["scorers"].items()
        if entry["library"] == "blip_itm" and entry.get("source", "pretrained") == "pretrained"
    }
    assert set(heads) == {
        "blip-itm-b16-pt",
        "blip-itm-l16-pt",
        "blip-itm-b16-ft",
        "blip-itm-l16-ft",
        "blip2-itm-g14-pt",
        "blip2-itm-g14-ft",
    }
    assert {score_column(config["scorers"][name]) for name in heads if name.startswith("blip-")} == {"itm_score"}
    assert {score_column(config["scorers"][name]) for name in heads if name.startswith("blip2-")} == {"itc_score"}
    ws = Workspace(config)
    assert ws.model_folder("blip-itm-b16-pt") == "data/models/converted/blip-itm-b16-pt"
    assert ws.model_folder("blip-itm-b16-ft") == "data/models/pretrained/blip-itm-b16-ft"


@pytest.mark.parametrize(
    "mutate, key",
    [
        (lambda c: c["scorers"]["blip-itm-b16-ft"].pop("head"), "head"),
        (lambda c: c["scorers"]["blip-itm-b16-ft"].update(head="cosine"), "cosine"),
        (
            lambda c: c["scorers"].update(
                {
                    "blip-itm-b16-ft": dict(
                        source="train",
                        head="itm",
                        arch="tiny-vit",
                        curated_set="clean",
                        recipe="tiny-scorer",
                        seed=0,
                        library="blip_itm",
                    )
                }
            ),
            r"blip-itm-b16-ft\.arch: not a parameter of scorer kind 'blip_itm'",
        ),
        (lambda c: c["models"]["blip-itm-b16-pt"].pop("processor"), "processor"),
        (lambda c: c["models"]["blip-itm-b16-pt"].update(convert="lavis_blip2"), "lavis_blip2"),
        (
            lambda c: c["scorers"]["blip-itm-b16-ft"].update(model="openai-clip-b32"),
            r"scorers\.blip-itm-b16-ft\.library",
        ),
        (
            lambda c: c["scorers"]["blip-itm-b16-ft"].update(model="blip-b16-14m"),
            r"scorers\.blip-itm-b16-ft\.model.*convert",
        ),
        (lambda c: c["models"]["blip-itm-b16-pt"].update(processor="nope"), r"models\.blip-itm-b16-pt\.processor"),
        (lambda c: c["models"]["blip-itm-b16-pt"].update(processor="blip-b16-14m"), "not a huggingface model"),
    ],
)
def test_itm_config_errors_name_the_key(user_config, mutate, key):
    from curate.registry import ConfigError
    from curate.workflow.config import check_config

    mutate(user_config)
    with pytest.raises(ConfigError, match=key):
        check_config(user_config)
