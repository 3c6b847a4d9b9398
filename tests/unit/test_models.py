"""Fetching pretrained models into folders the loaders read; offline, with tiny models built here
in the same formats (an open_clip weights file, a sentence-transformers folder, a checkpoint URL)."""

import json
import os
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from curate.scoring.clip import encode, load_model, write_arch_dir  # noqa: E402
from curate.scoring.pretrained import fetch_model, file_sha256, model_source  # noqa: E402
from curate.workflow.config import load_config


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    """A tiny open_clip model's weights as a plain state-dict file, as open_clip downloads them."""
    root = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    model, _, _ = load_model(str(write_arch_dir("tiny-vit-narrow", root / "arch")))
    torch.save(model.state_dict(), root / "open_clip_pytorch_model.bin")
    return root / "open_clip_pytorch_model.bin", model


def images_and_texts():
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)) for _ in range(3)]
    return images, ["a red circle", "two blue squares", "a green triangle"]


def test_open_clip_fetch_gives_a_local_dir_the_scorers_load(tmp_path, tiny_weights):
    weights, original = tiny_weights
    entry = {
        "library": "open_clip",
        "arch": "tiny-vit-narrow",
        "pretrained": str(weights),
        "sha256": file_sha256(weights),
    }
    record = fetch_model("tiny", entry, tmp_path / "tiny")
    assert record["sha256"] == entry["sha256"]
    assert json.loads((tmp_path / "tiny" / "fetch.json").read_text())["files"]["open_clip_model.safetensors"]
    model, preprocess, tokenizer = load_model(model_source(tmp_path / "tiny"))
    images, texts = images_and_texts()
    _, reference_preprocess, reference_tokenizer = load_model(str(tmp_path / "tiny"))
    got = encode(model, preprocess, tokenizer, images, texts)
    want = encode(original.eval(), reference_preprocess, reference_tokenizer, images, texts)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_sha256_mismatch_raises_and_null_records_the_hash(tmp_path, tiny_weights):
    weights, _ = tiny_weights
    entry = {"library": "open_clip", "arch": "tiny-vit-narrow", "pretrained": str(weights), "sha256": "0" * 64}
    with pytest.raises(ValueError, match="models.tiny: sha256"):
        fetch_model("tiny", entry, tmp_path / "tiny")
    record = fetch_model("tiny", dict(entry, sha256=None), tmp_path / "tiny")
    assert record["sha256"] == file_sha256(weights) and record["sha256_expected"] is None


def test_unknown_open_clip_tag_raises_without_downloading(tmp_path):
    entry = {"library": "open_clip", "arch": "ViT-B-32", "pretrained": "no-such-tag", "sha256": None}
    with pytest.raises(ValueError, match="no weights 'no-such-tag'"):
        fetch_model("b32", entry, tmp_path / "b32")


@pytest.fixture(scope="module")
def tiny_sentence_encoder(tmp_path_factory):
    from curate.scoring.sentence import build_tiny_sentence_encoder

    root = tmp_path_factory.mktemp("encoder") / "encoder"
    pairs = [("a red circle", "a circle that is red"), ("two blue squares", "a pair of blue squares")] * 4
    build_tiny_sentence_encoder(root, pairs, seed=0, steps=0)
    return root


def test_huggingface_fetch_through_snapshot_download(tmp_path, tiny_sentence_encoder):
    from curate.scoring.sentence import encode_sentences, load_sentence_encoder

    calls = []

    def snapshot_download(repo_id, revision, local_dir, cache_dir):
        calls.append((repo_id, revision, cache_dir))
        shutil.copytree(tiny_sentence_encoder, local_dir, dirs_exist_ok=True)
        return local_dir

    weights_file = next(
        p.relative_to(tiny_sentence_encoder).as_posix() for p in tiny_sentence_encoder.rglob("*.safetensors")
    )
    entry = {
        "library": "huggingface",
        "id": "sentence-transformers/all-MiniLM-L6-v2",
        "revision": "main",
        "weights_file": weights_file,
        "sha256": file_sha256(tiny_sentence_encoder / weights_file),
    }
    record = fetch_model(
        "minilm", entry, tmp_path / "minilm", cache_dir=tmp_path / "cache", snapshot_download=snapshot_download
    )
    assert calls == [("sentence-transformers/all-MiniLM-L6-v2", "main", str(tmp_path / "cache"))]
    assert record["origin"] == "hf://sentence-transformers/all-MiniLM-L6-v2@main"
    texts = ["a red circle", "two blue squares"]
    got = encode_sentences(load_sentence_encoder(tmp_path / "minilm"), texts)
    want = encode_sentences(load_sentence_encoder(tiny_sentence_encoder), texts)
    np.testing.assert_allclose(got, want, atol=1e-6)
    with pytest.raises(ValueError, match="sha256"):
        fetch_model("minilm", dict(entry, sha256="1" * 64), tmp_path / "minilm", snapshot_download=snapshot_download)


def test_huggingface_id_may_be_a_local_folder(tmp_path, tiny_sentence_encoder):
    entry = {"library": "huggingface", "id": str(tiny_sentence_encoder), "sha256": None}
    record = fetch_model("minilm", entry, tmp_path / "minilm")
    assert record["origin"] == str(tiny_sentence_encoder.resolve())
    assert set(record["files"]) >= {"config.json", "modules.json"}


def test_url_fetch_checks_the_hash(tmp_path, tiny_weights):
    weights, _ = tiny_weights
    entry = {"library": "url", "url": weights.as_uri(), "sha256": file_sha256(weights)}
    record = fetch_model("blip", entry, tmp_path / "blip")
    assert (tmp_path / "blip" / weights.name).read_bytes() == weights.read_bytes()
    assert record["file"] == weights.name
    with pytest.raises(ValueError, match="sha256"):
        fetch_model("blip", dict(entry, sha256="2" * 64), tmp_path / "blip")
    assert not list((tmp_path / "blip").glob("*.part"))


def test_every_configured_model_names_what_its_fetch_needs():

    config = load_config()
    import open_clip

    for name, entry in config["models"].items():
        if entry["library"] == "open_clip":
            assert entry["pretrained"] in open_clip.list_pretrained_tags_by_model(entry["arch"]), name
            if entry["pretrained"] == "openai":  # OpenAI's published hash is the URL's path segment
                assert open_clip.get_pretrained_cfg(entry["arch"], "openai")["url"].split("/")[-2] == entry["sha256"]


def test_url_mirrors_rewrite_every_plain_url_and_the_hub_endpoint_is_the_jobs(monkeypatch):
    from curate.data.mirrors import mirrored, use_hub_endpoint

    mirrors = {"https://": "http://127.0.0.1:9/web/", "https://storage.googleapis.com/": "http://mirror/gcs/"}
    assert mirrored("https://openaipublic.azureedge.net/clip/a.pt", mirrors) == (
        "http://127.0.0.1:9/web/openaipublic.azureedge.net/clip/a.pt"
    )
    assert mirrored("https://storage.googleapis.com/b.pth", mirrors) == "http://mirror/gcs/b.pth"  # longest prefix
    assert mirrored("http://other/x", mirrors) == "http://other/x" and mirrored("https://x", None) == "https://x"
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    use_hub_endpoint(None)
    assert "HF_ENDPOINT" not in __import__("os").environ
    use_hub_endpoint("http://127.0.0.1:9/")
    assert __import__("os").environ["HF_ENDPOINT"] == "http://127.0.0.1:9"
