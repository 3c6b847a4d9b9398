"""The rehearsal's tiny models, built once into a temporary local internet and taken by the
workflow's unchanged fetch and loading code: plain URLs through ``url_mirrors`` from a loopback
HTTP server, Hub repos through a ``snapshot_download`` that copies the repo folder."""

import fnmatch
import functools
import os
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import torch
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from curate.rehearsal.model_common import hub_path, web_path  # noqa: E402
from curate.rehearsal.models import build, catalogue, read_manifest, source_of  # noqa: E402
from curate.scoring.pretrained import fetch_model, file_sha256  # noqa: E402

MODELS = catalogue()
TEXTS = ["a red circle on the left", "two blue squares at the top", "a green triangle"]


def _images():
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)) for _ in TEXTS]


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def translate_path(self, path):
        """A URL with a query at its file ``<path>/?<query>``, as the rehearsal's server maps it
        (`web_path`: Google Drive's ``download?id=...``)."""
        base, _, query = path.partition("?")
        found = super().translate_path(base)
        return os.path.join(found, "?" + query) if query else found


@pytest.fixture(scope="module")
def internet(tmp_path_factory):
    """``(root, manifest, mirrors)``: the built local internet, ``R/`` served on loopback."""
    root = tmp_path_factory.mktemp("rehearsal")
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    try:
        manifest = build(root, port)
        yield root, manifest, {"https://": f"http://127.0.0.1:{port}/web/"}
    finally:
        server.shutdown()
        server.server_close()


def copying_snapshot_download(root):
    """huggingface_hub's ``snapshot_download`` over the local internet's repo folders."""

    def snapshot_download(repo_id, revision, local_dir, cache_dir, allow_patterns=None):
        source = hub_path(root, repo_id)
        for path in sorted(source.rglob("*")):
            rel = path.relative_to(source).as_posix()
            if path.is_file() and (allow_patterns is None or any(fnmatch.fnmatch(rel, p) for p in allow_patterns)):
                target = os.path.join(local_dir, rel)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                shutil.copyfile(path, target)
        return local_dir

    return snapshot_download


def pinned(entry, manifest, name):
    """The entry as the rehearsal scale gives it: the tiny file's sha256 where the catalogue pins one."""
    return dict(entry, sha256=manifest[name]["sha256"]) if entry.get("sha256") else entry


def names(library=None, where=None):
    return sorted(
        n for n, e in MODELS.items() if (library is None or e["library"] == library) and (where is None or where(n, e))
    )


OPENAI = names("open_clip", lambda n, e: source_of(n, e)[0] == "web")
OPEN_CLIP_HUB = names("open_clip", lambda n, e: source_of(n, e)[0] == "hub")


def test_every_catalogue_entry_is_served_with_the_manifests_hash(internet):
    root, manifest, _ = internet
    assert set(manifest) == set(MODELS) and read_manifest(root) == manifest
    # open_clip's Hub repos: EVA-CLIP's five and DataComp-1B's B/32
    assert {"fasttext-lid176", "wordnet"} <= set(MODELS) and len(OPENAI) == 6 and len(OPEN_CLIP_HUB) == 6
    for name, record in manifest.items():
        kind, where = source_of(name, MODELS[name])
        if kind == "web":
            assert record["url"] == where and file_sha256(web_path(root, where)) == record["sha256"], name
        else:
            folder = hub_path(root, where)
            assert record["repo"] == where and (folder / "README.md").is_file(), name
            if record["sha256"]:
                assert file_sha256(folder / record["weights_file"]) == record["sha256"], name
    with pytest.raises(ValueError, match="no tiny stand-in for https://example.org/x.bin"):
        build(root / "other", 1, models={"x": {"library": "url", "url": "https://example.org/x.bin", "sha256": None}})


def test_openai_architecture_read_off_real_shapes_is_the_named_one():
    import open_clip
    from open_clip.model import CLIP

    from curate.scoring.clip import OPENAI_NON_WEIGHTS, openai_model_cfg, same_architecture

    for name in OPENAI:
        arch = MODELS[name]["arch"]
        cfg = open_clip.get_model_config(arch)
        with torch.device("meta"):  # the real sizes, without their memory
            state = CLIP(**cfg).state_dict()
        state = {k: v for k, v in state.items() if k != "attn_mask" and k not in OPENAI_NON_WEIGHTS}
        assert same_architecture(openai_model_cfg(state), cfg), name
        assert not same_architecture(openai_model_cfg(state), open_clip.get_model_config("ViT-H-14")), name


def test_openai_clips_fetch_through_the_mirror_as_open_clip_loads_them(internet, tmp_path):
    import open_clip

    from curate.scoring.clip import encode, load_model

    root, manifest, mirrors = internet
    images = _images()
    for name in OPENAI:
        entry = MODELS[name]
        with pytest.raises(ValueError, match=f"models.{name}: sha256"):  # the catalogue pins OpenAI's bytes
            fetch_model(name, entry, tmp_path / name, mirrors=mirrors)
        record = fetch_model(name, pinned(entry, manifest, name), tmp_path / name, mirrors=mirrors)
        assert record["origin"] == source_of(name, entry)[1] and record["sha256"] == manifest[name]["sha256"]
        assert record["arch_source"] == "checkpoint" and record["matches_arch"] is False
        got = encode(*load_model(f"local-dir:{tmp_path / name}"), images, TEXTS)
        reference = open_clip.load_openai_model(str(web_path(root, record["origin"])), device="cpu").eval()
        _, preprocess, tokenizer = load_model(f"local-dir:{tmp_path / name}")
        want = encode(reference, preprocess, tokenizer, images, TEXTS)
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, atol=1e-5)
        assert np.ptp(np.sum(got[0] * got[1], axis=1)) > 0, name  # the pairs' cosines differ


def test_open_clip_hub_repos_fetch_with_their_own_config(internet, tmp_path):
    from curate.scoring.clip import encode, load_model

    root, manifest, _ = internet
    images = _images()
    for name in OPEN_CLIP_HUB:
        record = fetch_model(
            name,
            MODELS[name],
            tmp_path / name,
            cache_dir=tmp_path / "cache",
            snapshot_download=copying_snapshot_download(root),
        )
        assert record["arch_source"] == "repo" and record["matches_arch"] is False
        assert record["sha256"] == manifest[name]["sha256"]
        got = encode(*load_model(f"local-dir:{tmp_path / name}"), images, TEXTS)
        repo = hub_path(root, source_of(name, MODELS[name])[1])
        want = encode(*load_model(f"local-dir:{repo}"), images, TEXTS)  # open_clip's loader, on the repo itself
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, atol=1e-5)
        assert not list(tmp_path.glob(".download-*"))


def test_original_blip_checkpoints_convert_and_score(internet, tmp_path):
    from curate.scoring.itm import convert_model, itm_scores, load_itm_model, load_original_state_dict

    root, manifest, mirrors = internet
    for name in ("blip-itm-b16-pt", "blip-itm-l16-pt"):
        entry = MODELS[name]
        fetch_model(name, entry, tmp_path / name, mirrors=mirrors)
        processor = hub_path(root, MODELS[entry["processor"]]["id"])
        record = convert_model(entry, tmp_path / name, tmp_path / f"{name}-hf", processor)
        assert "text_decoder" in record["dropped_prefixes"] and "visual_encoder_m" in record["dropped_prefixes"]
        original = load_original_state_dict(web_path(root, entry["url"]))
        model, proc, family = load_itm_model(tmp_path / f"{name}-hf")
        converted = model.state_dict()
        for ours, theirs in [
            ("visual_encoder.blocks.1.attn.qkv.weight", "vision_model.encoder.layers.1.self_attn.qkv.weight"),
            ("visual_encoder.cls_token", "vision_model.embeddings.class_embedding"),
            ("visual_encoder.norm.bias", "vision_model.post_layernorm.bias"),
            (
                "text_encoder.encoder.layer.1.crossattention.self.key.weight",
                "text_encoder.encoder.layer.1.crossattention.self.key.weight",
            ),
            ("itm_head.weight", "itm_head.weight"),
        ]:
            torch.testing.assert_close(converted[theirs], original[ours])
        scores = itm_scores(model, proc, family, _images(), TEXTS, "itm")
        assert np.all((scores > 0) & (scores < 1)) and np.ptp(scores) > 0


def test_sieves_blip_originals_convert_to_a_captioner_and_a_text_encoder(internet, tmp_path):
    """Sieve's 14M checkpoint, converted with the Hub captioner's processor (``blip_caption``) and
    as an ITM model (``blip_itm``, its text encoder), captions and embeds."""
    from curate.scoring.captioning import generate_captions, load_captioner
    from curate.scoring.itm import convert_model
    from curate.scoring.sentence import encode_sentences, load_sentence_encoder

    root, _, mirrors = internet
    for name in ("blip-b16-14m", "blip-itm-b16-14m"):
        entry = MODELS[name]
        fetch_model(name, entry, tmp_path / name, mirrors=mirrors)
        processor = hub_path(root, MODELS[entry["processor"]]["id"])
        record = convert_model(entry, tmp_path / name, tmp_path / f"{name}-hf", processor)
        assert record["image_size"] == 32
    model, processor = load_captioner(tmp_path / "blip-b16-14m-hf")
    captions = generate_captions(model, processor, _images()[:2], seed=0)
    assert len(captions) == 2 and all(isinstance(c, str) for c in captions[1])
    emb = encode_sentences(load_sentence_encoder(tmp_path / "blip-itm-b16-14m-hf", "blip_itm"), TEXTS)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)


def test_imagenet21k_wnids_are_the_shape_synsets_of_the_wordnet(internet, tmp_path):
    from curate.selection.baselines import read_wnids

    _, manifest, mirrors = internet
    name = "imagenet21k-wordnet-ids"
    record = fetch_model(name, pinned(MODELS[name], manifest, name), tmp_path / "ids", mirrors=mirrors)
    wnids = manifest["wordnet"]["shape_wnids"]
    assert read_wnids(tmp_path / "ids" / record["file"]) == {int(w[1:]) for w in wnids}


def test_blip_captioner_and_lavis_checkpoints_have_their_sources_layout(internet, tmp_path):
    root, _, mirrors = internet
    fetch_model("blip-b16-14m", MODELS["blip-b16-14m"], tmp_path / "14m", mirrors=mirrors)
    checkpoint = torch.load(tmp_path / "14m" / "model_base_14M.pth", map_location="cpu", weights_only=True)
    state = checkpoint["model"]
    words = state["text_encoder.embeddings.word_embeddings.weight"]
    torch.testing.assert_close(state["text_decoder.cls.predictions.decoder.weight"], words)  # tied
    layer = "encoder.layer.0"
    torch.testing.assert_close(
        state[f"text_decoder.bert.{layer}.crossattention.self.query.weight"],
        state[f"text_encoder.{layer}.crossattention.self.query.weight"],
    )
    assert not torch.equal(
        state[f"text_decoder.bert.{layer}.attention.self.query.weight"],
        state[f"text_encoder.{layer}.attention.self.query.weight"],
    )
    assert "text_encoder.pooler.dense.weight" not in state and state["queue_ptr"].dtype == torch.long
    fetch_model("blip2-itm-l14-pt", MODELS["blip2-itm-l14-pt"], tmp_path / "b2", mirrors=mirrors)
    qformer = torch.load(tmp_path / "b2" / "blip2_pretrained_vitL.pth", map_location="cpu", weights_only=True)["model"]
    assert not any(k.startswith("visual_encoder.") for k in qformer)  # LAVIS drops the frozen ViT
    assert "Qformer.bert.encoder.layer.0.crossattention.self.key.weight" in qformer
    assert "Qformer.bert.encoder.layer.1.crossattention.self.key.weight" not in qformer
    assert {
        "query_tokens",
        "ln_vision.weight",
        "Qformer.bert.encoder.layer.1.output_query.dense.weight",
        "itm_head.weight",
    } <= set(qformer)


def test_hub_snapshots_fetch_and_load_with_from_pretrained(internet, tmp_path):
    from transformers import AutoModelForCausalLM, AutoProcessor, CLIPVisionModel, GitForCausalLM

    from curate.scoring.captioning import generate_captions, load_captioner
    from curate.scoring.itm import itm_scores, load_itm_model
    from curate.scoring.sentence import encode_sentences, load_sentence_encoder

    root, manifest, _ = internet
    download = copying_snapshot_download(root)
    images = _images()
    for name in names("huggingface"):
        entry = pinned(MODELS[name], manifest, name)
        out = tmp_path / name
        record = fetch_model(name, entry, out, cache_dir=tmp_path / "cache", snapshot_download=download)
        assert record["sha256"] == manifest[name]["sha256"] and (out / "README.md").is_file()
        repo = entry["id"]
        if repo == "Salesforce/blip-image-captioning-base":
            model, processor = load_captioner(out)
            captions = generate_captions(model, processor, images[:2], seed=0)
            assert len(captions) == 2 and all(isinstance(c, str) for c in captions[0])
        elif repo.startswith("Salesforce/blip"):
            model, processor, family = load_itm_model(out)
            for head in ("itm", "itc"):
                assert np.isfinite(itm_scores(model, processor, family, images, TEXTS, head)).all()
        elif repo == "microsoft/git-base":
            model, processor = GitForCausalLM.from_pretrained(out), AutoProcessor.from_pretrained(out)
            ids = model.generate(
                pixel_values=processor(images=images[:1], return_tensors="pt").pixel_values, max_length=8
            )
            assert ids.shape[0] == 1 and isinstance(processor.batch_decode(ids, skip_special_tokens=True)[0], str)
        elif repo == "openai/clip-vit-large-patch14-336":
            vision = CLIPVisionModel.from_pretrained(out)
            assert vision.config.patch_size == 14 and vision.config.num_hidden_layers >= 2
        elif repo == "facebook/dinov2-large":
            from curate.scoring.image_encoder import encode_images, load_image_encoder

            emb = encode_images(*load_image_encoder(out), images)
            assert emb.shape == (len(images), 64)
            np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
        elif repo == "lmsys/vicuna-7b-v1.5":
            assert sorted(p.name for p in out.glob("pytorch_model-*.bin")) == [
                "pytorch_model-00001-of-00002.bin",
                "pytorch_model-00002-of-00002.bin",
            ]
            lm = AutoModelForCausalLM.from_pretrained(out)
            assert lm.dtype == torch.float16 and lm.config.model_type == "llama"
        elif repo == "sentence-transformers/all-MiniLM-L6-v2":
            emb = encode_sentences(load_sentence_encoder(out), TEXTS)
            np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
        elif repo == "google-bert/bert-base-uncased":
            from transformers import BertForMaskedLM, BertTokenizer

            tokenizer = BertTokenizer.from_pretrained(out)  # as LAVIS's init_tokenizer reads it
            assert tokenizer.tokenize("A RED circle") == tokenizer.tokenize("a red circle")  # uncased
            bert = BertForMaskedLM.from_pretrained(out)
            ids = tokenizer(TEXTS, padding=True, return_tensors="pt")
            assert bert(**ids).logits.shape[-1] == len(tokenizer)
        else:
            raise AssertionError(f"no loading check for {repo}")


def _protobuf_fields(data: bytes) -> list[tuple[int, object]]:
    """The top-level ``(field number, value)`` pairs of a protobuf message (varints as ints,
    fixed32 as bytes, length-delimited as bytes)."""
    out, i = [], 0

    def varint():
        nonlocal i
        shift = value = 0
        while True:
            byte = data[i]
            i += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value

    while i < len(data):
        key = varint()
        number, wire = key >> 3, key & 7
        if wire == 0:
            out.append((number, varint()))
        elif wire == 5:
            out.append((number, data[i : i + 4]))
            i += 4
        elif wire == 2:
            n = varint()
            out.append((number, data[i : i + n]))
            i += n
        else:
            raise ValueError(f"wire type {wire}")
    return out


def test_vicuna_tokenizer_is_llamas_sentencepiece_model(internet):
    root, _, _ = internet
    folder = hub_path(root, MODELS["vicuna-7b-v1.5"]["id"])
    model = _protobuf_fields((folder / "tokenizer.model").read_bytes())
    pieces = [dict(_protobuf_fields(value)) for number, value in model if number == 1]
    trainer = dict(_protobuf_fields(next(value for number, value in model if number == 2)))
    assert [p[1] for p in pieces[:5]] == [b"<unk>", b"<s>", b"</s>", b"<0x00>", b"<0x01>"]
    assert [p[3] for p in pieces[:4]] == [2, 3, 3, 6] and pieces[-1][3] == 1  # UNKNOWN CONTROL CONTROL BYTE .. NORMAL
    assert trainer[3] == 2 and trainer[35] == 1 and trainer[4] == len(pieces)  # BPE, byte fallback
    assert not (folder / "tokenizer.json").exists()  # as the real repo: the loader converts tokenizer.model
    spm = pytest.importorskip("sentencepiece", reason="reading Llama's tokenizer.model needs sentencepiece")
    assert spm.SentencePieceProcessor(model_file=str(folder / "tokenizer.model")).encode(
        "a red circle", out_type=str
    ) == [
        "▁a",
        "▁red",
        "▁circle",
    ]
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert tokenizer("a red circle")["input_ids"][0] == tokenizer.bos_token_id == 1 and tokenizer.pad_token == "<unk>"


def test_langid_model_is_fasttexts_with_lid176_labels(internet, tmp_path):
    from curate.rehearsal.model_text import LID_LANGUAGES
    from curate.scoring.langid import load_langid, predict_languages

    _, manifest, mirrors = internet
    entry = pinned(MODELS["fasttext-lid176"], manifest, "fasttext-lid176")
    record = fetch_model("fasttext-lid176", entry, tmp_path / "lid", mirrors=mirrors)
    model = load_langid(tmp_path / "lid" / record["file"])
    assert sorted(model.get_labels()) == sorted(f"__label__{lang}" for lang in LID_LANGUAGES)
    assert predict_languages(model, ["a red circle on the left of a blue background"]) == ["en"]


def test_wordnet_zip_is_read_by_nltk(internet, tmp_path, monkeypatch):
    nltk = pytest.importorskip("nltk")
    from nltk.corpus.reader import WordNetCorpusReader

    from curate.rehearsal.model_text import wordnet_files

    _, manifest, mirrors = internet
    record = fetch_model("wordnet", MODELS["wordnet"], tmp_path / "wordnet", mirrors=mirrors)
    data = tmp_path / "nltk_data"
    (data / "corpora").mkdir(parents=True)
    for folder in (data, data / "corpora"):
        folder.chmod(0o700)  # nltk reads data only from folders no other account can write
    shutil.copyfile(tmp_path / "wordnet" / record["file"], data / "corpora" / "wordnet.zip")
    monkeypatch.setattr(nltk.data, "path", [str(data)])
    wn = WordNetCorpusReader(nltk.data.find("corpora/wordnet.zip/wordnet/"), None)
    _, offsets = wordnet_files()
    circle, square = wn.synsets("circles")[0], wn.synsets("boxes")[0]
    assert circle.name() == "circle.n.01" and circle.offset() == offsets["circle.n.01"]
    assert square.name() == "square.n.01" and circle.hypernyms()[0].name() == "shape.n.01"
    assert f"n{circle.offset():08d}" in manifest["wordnet"]["shape_wnids"]
    assert f"n{wn.synsets('red')[0].offset():08d}" not in manifest["wordnet"]["shape_wnids"]
    assert wn.synsets("rhombi")[0].name() == "diamond.n.01" and wn.synsets("dog") == []
    assert wn.synset("tiny.s.01").similar_tos()[0].name() == "small.a.01" and wn.get_version() == "3.0"
    assert wn.lemma_from_key("tiny%5:00:00:small:00").name() == "tiny"


def test_deit_init_is_a_timm_vit_checkpoint_as_lavis_reads_it(internet, tmp_path):
    """LAVIS's BLIP pretraining loads DeiT-B's .pth (``{"model": state_dict}``) into a timm ViT."""
    from timm.models.vision_transformer import VisionTransformer

    root, manifest, mirrors = internet
    name = "deit-base-patch16-224"
    fetch_model(name, pinned(MODELS[name], manifest, name), tmp_path / name, mirrors=mirrors)
    [pth] = (tmp_path / name).glob("*.pth")
    assert pth.name == "deit_base_patch16_224-b5f2ef4d.pth"
    state = torch.load(pth, map_location="cpu", weights_only=True)["model"]
    width = state["cls_token"].shape[-1]
    depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
    vit = VisionTransformer(img_size=32, patch_size=16, embed_dim=width, depth=depth, num_heads=1, num_classes=10)
    assert vit.load_state_dict(state, strict=True)
    assert vit.forward_features(torch.zeros(1, 3, 32, 32)).shape == (1, 5, width)


def test_hype_release_fetches_from_drive_urls_and_scores(internet, tmp_path):
    from curate.scoring.hype import read_release, score_chunk
    from curate.scoring.pretrained import fetched_file
    from tests.unit.pool_fixtures import write_pool

    _, manifest, mirrors = internet
    files = {}
    for name in ("hype-vit-l14", "hype-reference"):
        record = fetch_model(name, pinned(MODELS[name], manifest, name), tmp_path / name, mirrors=mirrors)
        assert record["file"] == "download"  # the URL's path, its query dropped
        files[name] = fetched_file(tmp_path / name)
    _, info = read_release(files["hype-vit-l14"])
    assert info["curvature"] == pytest.approx(0.5, rel=1e-5) and info["model_cfg"]["vision_cfg"]["width"] == 64
    paths = write_pool(tmp_path / "pool", n_samples=4)
    frame, report = score_chunk(files["hype-vit-l14"], files["hype-reference"], paths, batch_size=2)
    assert len(frame) == 4 and report["model"]["reference_size"] == 8
    assert np.isfinite(frame[["neg_lorentzian_distance", "image_specificity", "text_specificity"]].to_numpy()).all()
