"""Sieve's and DataComp's baselines' own models on a real pool (`source: pretrained` captioners,
sentence encoders and language detectors, WordNet), through the workflow's own fetch, convert and
load code, on tiny models built here and saved in their sources' formats: salesforce/BLIP's
pretraining checkpoint, a GIT Hub snapshot, a sentence-transformers folder, an open_clip weights
file, a fastText supervised ``.bin`` with lid.176's labels, nltk_data's ``wordnet.zip``."""

import json
import os
import zipfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from curate.data.scorefiles import save_scores  # noqa: E402
from curate.data.shards import ShardWriter  # noqa: E402
from curate.registry import ConfigError  # noqa: E402
from curate.scoring.captioning import (  # noqa: E402
    CAPTION_SETTINGS,
    caption_pool_chunk,
    clip_style_image_processor,
    generate_caption_ids,
    generate_captions,
    load_captioner,
    tiny_blip_config,
    train_wordpiece_tokenizer,
)
from curate.scoring.components import LANGID_MODELS  # noqa: E402
from curate.scoring.itm import blip_text_features, convert_model, load_itm_model  # noqa: E402
from curate.scoring.langid import english_mask, is_english, load_langid, train_langid  # noqa: E402
from curate.scoring.pretrained import fetch_model, fetched_file, file_sha256, unpack_zip  # noqa: E402
from curate.scoring.sentence import encode_sentences, load_sentence_encoder  # noqa: E402
from curate.scoring.sieve import sieve_score_frame  # noqa: E402
from curate.selection.baselines import read_wnids, wordnet_lookup  # noqa: E402
from curate.selection.methods import SELECTIONS  # noqa: E402
from curate.workflow.config import check_config, load_config  # noqa: E402
from curate.workflow.workspace import Workspace  # noqa: E402
from tests.unit.pool_fixtures import jpg_bytes, uid, write_pool  # noqa: E402
from tests.unit.registry_fixtures import selection  # noqa: E402

torch.set_num_threads(1)

TEXTS = ["a red circle on a blue field", "two green squares", "a picture of a cat", "a dog on the grass"]
IMAGE_SIZE = 224  # Sieve's CLIP-style preprocessing; tiny models with 32 px patches keep it cheap


def url_entry(path, **extra) -> dict:
    """A ``library: url`` models entry for a file served here (a file:// URL), its hash pinned."""
    return {"library": "url", "url": path.as_uri(), "sha256": file_sha256(path), **extra}


# ---- Captioners ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def blip_checkpoint(tmp_path_factory):
    """A tiny BLIP pretraining checkpoint in salesforce/BLIP's layout (``{'model': state_dict}``
    under BLIP's key names): the ViT, the text encoder with its ITC projections and ITM head, the
    text decoder (without its output embedding, which BLIP ties to the word embeddings), momentum
    encoders and queues; and the transformers models it was written from."""
    from transformers import BlipForConditionalGeneration, BlipForImageTextRetrieval

    from tests.unit.model_fixtures import transformers_key_to_blip

    root = tmp_path_factory.mktemp("blip")
    tokenizer = train_wordpiece_tokenizer(TEXTS, vocab_size=120, extra_texts=[CAPTION_SETTINGS.prompt])
    config = tiny_blip_config(tokenizer, image_size=IMAGE_SIZE, patch_size=32, hidden=32, layers=1, max_positions=40)
    config.image_text_hidden_size = 16
    config.vision_config.layer_norm_eps = 1e-6  # BLIP's ViT (timm's)
    config.text_config.layer_norm_eps = 1e-12  # BLIP's BERT
    torch.manual_seed(0)
    captioner = BlipForConditionalGeneration(config).eval()
    itm = BlipForImageTextRetrieval(config).eval()
    itm.vision_model.load_state_dict(captioner.vision_model.state_dict())  # one ViT in the checkpoint
    state = {transformers_key_to_blip(k): v.clone() for k, v in itm.state_dict().items()}
    state |= {k: v.clone() for k, v in captioner.state_dict().items() if k.startswith("text_decoder.")}
    del state["text_decoder.cls.predictions.decoder.weight"]
    for k in [k for k in state if k.startswith(("visual_encoder.blocks.0.", "text_encoder.encoder.layer.0."))]:
        state[k.replace("visual_encoder", "visual_encoder_m").replace("text_encoder", "text_encoder_m")] = state[k] + 1
    state |= {"image_queue": torch.randn(16, 8), "text_queue": torch.randn(16, 8), "temp": torch.tensor(0.07)}
    torch.save({"model": state, "config": {"image_size": IMAGE_SIZE}}, root / "model_base_14M.pth")
    # the processor of the Hub's BLIP captioner: BLIP's tokenizer, 384 px square resizing
    from transformers import BlipImageProcessor, BlipProcessor

    processor_dir = root / "blip-image-captioning-base"
    BlipProcessor(BlipImageProcessor(size={"height": 384, "width": 384}), tokenizer).save_pretrained(processor_dir)
    return {"path": root / "model_base_14M.pth", "processor": processor_dir, "captioner": captioner, "itm": itm}


@pytest.fixture(scope="module")
def converted_blip(blip_checkpoint, tmp_path_factory):
    """The checkpoint fetched as its `models` entry (library url) and converted both ways."""
    root = tmp_path_factory.mktemp("converted")
    fetch_model("blip-b16-14m", url_entry(blip_checkpoint["path"]), root / "pretrained")
    out = {}
    for kind in ("blip_caption", "blip_itm"):
        entry = url_entry(blip_checkpoint["path"], convert=kind, processor="blip-caption-b16")
        out[kind] = (
            convert_model(entry, root / "pretrained", root / kind, blip_checkpoint["processor"], head_dim=16),
            root / kind,
        )
    return out


def pool_images():
    return [Image.new("RGB", (60 + 30 * i, 90), (200, 30 * i, 20)) for i in range(3)]


def test_blip_pretraining_checkpoint_converts_to_the_captioner_that_captions_the_same(blip_checkpoint, converted_blip):
    record, folder = converted_blip["blip_caption"]
    assert record["target"] == "BlipForConditionalGeneration" and record["image_size"] == IMAGE_SIZE
    # the text encoder, ITM head, momentum encoders and queues are not the captioner's
    assert {"text_encoder", "itm_head", "visual_encoder_m", "text_encoder_m", "image_queue"} <= set(
        record["dropped_prefixes"]
    )
    assert json.loads((folder / "conversion.json").read_text()) == record
    model, processor = load_captioner(folder, image_size=IMAGE_SIZE)
    original = blip_checkpoint["captioner"]
    for key, value in original.state_dict().items():  # every weight, the tied output embedding too
        torch.testing.assert_close(model.state_dict()[key], value, rtol=0, atol=0)
    assert model.config.vision_config.image_size == IMAGE_SIZE and model.config.text_config.bos_token_id == (
        processor.tokenizer.bos_token_id
    )
    reference = type(processor)(clip_style_image_processor(IMAGE_SIZE), processor.tokenizer)
    images = pool_images()
    captions = generate_captions(model, processor, images, seed=3)
    assert captions == generate_captions(original, reference, images, seed=3)
    assert [len(c) for c in captions] == [CAPTION_SETTINGS.num_captions] * len(images)


def test_blip_itm_conversion_of_the_same_checkpoint_is_sieves_blip_text_encoder(blip_checkpoint, converted_blip):
    record, folder = converted_blip["blip_itm"]
    assert record["target"] == "BlipForImageTextRetrieval" and "text_decoder" in record["dropped_prefixes"]
    encoder = load_sentence_encoder(folder, "blip_itm")
    got = encode_sentences(encoder, TEXTS, batch_size=3)
    _, processor, _ = load_itm_model(folder)
    want = blip_text_features(blip_checkpoint["itm"], processor, TEXTS)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert got.shape == (len(TEXTS), 16)


@pytest.fixture(scope="module")
def git_snapshot(tmp_path_factory):
    """A tiny ``microsoft/git-base`` snapshot: ``GitForCausalLM`` saved with save_pretrained, CLIP's
    image processor and a BERT tokenizer, as the Hub repo holds them (no processor_config.json)."""
    from transformers import CLIPImageProcessor, GitConfig, GitForCausalLM

    from curate.scoring.captioning import CLIP_MEAN, CLIP_STD

    root = tmp_path_factory.mktemp("git") / "git-base"
    tokenizer = train_wordpiece_tokenizer(
        TEXTS, vocab_size=120, extra_texts=[CAPTION_SETTINGS.prompt], blip_tokens=False
    )
    hidden = 32
    config = GitConfig(
        vision_config=dict(
            hidden_size=hidden,
            intermediate_size=2 * hidden,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=IMAGE_SIZE,
            patch_size=32,
        ),
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=64,
        bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(1)
    GitForCausalLM(config).eval().save_pretrained(root)
    size = {"shortest_edge": IMAGE_SIZE}
    crop = {"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    CLIPImageProcessor(size=size, crop_size=crop, image_mean=list(CLIP_MEAN), image_std=list(CLIP_STD)).save_pretrained(
        root
    )
    tokenizer.save_pretrained(root)
    return root


def test_git_snapshot_fetched_captions_a_pool_chunk_with_sieves_settings(git_snapshot, tmp_path):
    entry = {"library": "huggingface", "id": str(git_snapshot), "sha256": None}
    fetch_model("git-base-10m", entry, tmp_path / "git")
    shards = write_pool(tmp_path / "pool", samples_per_shard=3, n_samples=5, corrupt={4})
    captions, report = caption_pool_chunk(tmp_path / "git", shards, seed=7, batch_size=2, image_size=IMAGE_SIZE)
    assert captions["uid"].tolist() == [uid(i) for i in range(4)] and report["kept"] == 4
    assert all(len(c) == CAPTION_SETTINGS.num_captions for c in captions["captions"])
    again, _ = caption_pool_chunk(tmp_path / "git", shards, seed=7, batch_size=2, image_size=IMAGE_SIZE)
    assert again["captions"].tolist() == captions["captions"].tolist()  # seeded per chunk and batch
    model, processor = load_captioner(tmp_path / "git", image_size=IMAGE_SIZE)
    ids = generate_caption_ids(model, processor, pool_images()[:1], seed=0)
    prompt = [
        processor.tokenizer.cls_token_id,
        *processor.tokenizer("a picture of", add_special_tokens=False)["input_ids"],
    ]
    assert (ids[:, : len(prompt)] == torch.tensor(prompt)).all()  # [CLS] a picture of, then the caption
    assert ids.shape == (CAPTION_SETTINGS.num_captions, ids.shape[1]) and ids.shape[1] <= CAPTION_SETTINGS.max_length
    texts = processor.tokenizer.batch_decode(ids, skip_special_tokens=True)
    assert all(t.startswith("a picture of") for t in texts)


# ---- Sentence encoders and the Sieve score -------------------------------------------------------


def test_sieve_scores_the_first_k_captions_with_a_fetched_sentence_transformer(tmp_path):
    from curate.scoring.sentence import build_tiny_sentence_encoder

    pairs = [("a red circle", "a circle that is red"), ("two blue squares", "a pair of blue squares")] * 4
    build_tiny_sentence_encoder(tmp_path / "minilm-snapshot", pairs, seed=0, steps=0)
    entry = {"library": "huggingface", "id": str(tmp_path / "minilm-snapshot"), "sha256": None}
    fetch_model("all-minilm-l6-v2", entry, tmp_path / "minilm")
    encoder = load_sentence_encoder(tmp_path / "minilm", "sentence_transformers")
    captions = pd.DataFrame(
        {
            "uid": ["a", "b"],
            "text": ["a red circle", "two blue squares"],
            "captions": [
                ["two blue squares", "a red circle", "a cat", "a dog"],
                ["a cat", "a dog", "two blue squares", "a red circle"],
            ],
        }
    )
    two = sieve_score_frame(encoder, captions, num_captions=2)
    first_two = captions.assign(captions=[c[:2] for c in captions["captions"]])
    pd.testing.assert_frame_equal(two, sieve_score_frame(encoder, first_two))
    assert two["best_caption"][0] == "a red circle" and two["sieve_score"][0] == pytest.approx(1.0, abs=1e-5)
    every = sieve_score_frame(encoder, captions)  # sample b's alt-text is its third caption
    assert every["best_caption"][1] == "two blue squares" and every["sieve_score"][1] == pytest.approx(1.0, abs=1e-5)
    assert two["sieve_score"][1] < 0.999
    with pytest.raises(ValueError, match="num_captions=5"):
        sieve_score_frame(encoder, captions, num_captions=5)


def test_clip_text_tower_is_a_sentence_encoder(tmp_path):
    from curate.scoring.clip import load_model, write_arch_dir

    torch.manual_seed(0)
    model, _, tokenizer = load_model(str(write_arch_dir("tiny-vit-narrow", tmp_path / "arch")))
    torch.save(model.state_dict(), tmp_path / "open_clip_pytorch_model.bin")
    entry = {
        "library": "open_clip",
        "arch": "tiny-vit-narrow",
        "pretrained": str(tmp_path / "open_clip_pytorch_model.bin"),
    }
    fetch_model("openai-clip-l14", entry | {"sha256": None}, tmp_path / "clip")
    got = encode_sentences(load_sentence_encoder(tmp_path / "clip", "open_clip"), TEXTS, batch_size=3)
    with torch.no_grad():
        want = torch.nn.functional.normalize(model.eval().encode_text(tokenizer(TEXTS)), dim=-1)
    np.testing.assert_allclose(got, want.numpy(), rtol=0, atol=1e-5)


# ---- Language identification ----------------------------------------------------------------------


def test_fasttext_bin_with_lid176_labels_fetched_decides_english(tmp_path):
    # a supervised fastText model whose labels are lid.176's (__label__en, __label__de, ...)
    lid = tmp_path / "served" / "lid.176.bin"
    train_langid(lid, seed=0, n_per_language=200, gibberish_label=None)
    assert sorted(load_langid(lid).get_labels()) == ["__label__de", "__label__en", "__label__es", "__label__fr"]
    record = fetch_model("fasttext-lid176", url_entry(lid), tmp_path / "fetched")
    assert record["file"] == "lid.176.bin" and fetched_file(tmp_path / "fetched").name == "lid.176.bin"
    detector = LANGID_MODELS.complete({"source": "pretrained", "model": "fasttext-lid176"}, "langid_models.lid")
    texts = ["a red circle on a\nblue field", "ein roter kreis auf grauem hintergrund", "un carré vert"]
    mask = english_mask(detector, tmp_path / "fetched", texts)
    np.testing.assert_array_equal(mask, is_english(load_langid(lid), texts))
    assert mask.tolist() == [True, False, False]


GCLD3 = LANGID_MODELS.complete({"library": "gcld3"}, "langid_models.gcld3")


def test_gcld3_english_decision_as_datacomps_laion_filter_asks_it():
    texts = [
        "a photo of a dog running on the beach at sunset",
        "ein Hund läuft bei Sonnenuntergang am Strand entlang",
        "un chien qui court sur la plage au coucher du soleil",
        "a photo of a dog running\non the beach at sunset",  # newline replaced, as DataComp does
    ]
    assert (GCLD3["min_num_bytes"], GCLD3["max_num_bytes"]) == (0, 1000)
    assert english_mask(GCLD3, None, texts).tolist() == [True, False, False, True]


def test_laion2b_selection_with_gcld3_reads_no_detector_file(tmp_path):
    texts = [
        "a photo of a dog running on the beach at sunset",
        "ein Hund läuft bei Sonnenuntergang am Strand entlang",
        "a small red house next to a large green tree",
    ]
    folder = tmp_path / "shards"
    with ShardWriter(folder, 0, 10) as writer:
        for i, text in enumerate(texts):
            meta = {"uid": uid(i), "url": f"http://x/{i}", "original_width": 300, "original_height": 300}
            writer.write(jpg_bytes((10, 10, 10)), text, meta)
    scores = tmp_path / "scores.parquet"
    save_scores(pd.DataFrame({"uid": [uid(i) for i in range(3)], "clip_score": np.float32([0.3, 0.9, 0.2])}), scores)
    entry = selection("laion2b", langid_model=GCLD3, threshold=0.28)
    inputs = {"metadata": sorted(folder.glob("*.parquet")), "scores": [scores]}  # no "langid": gcld3 ships its model
    assert SELECTIONS["laion2b"].run(entry, inputs) == [uid(0)]


# ---- WordNet and ImageNet-21k (DataComp's text-based filter) ----------------------------------------

LEXNUM = {"a": 0, "r": 1, "n": 2, "v": 3}
POS_FILES = {"n": "noun", "v": "verb", "a": "adj", "r": "adv"}
#: (pos, byte offset, words, gloss): WordNet 3.0's layout in miniature. "orange"'s first synset is
#: the fruit (nouns come first); the verb "run" sits at the byte offset of the noun "circle".
SYNSETS = [
    ("n", 1000, ["dog", "domestic_dog"], "a domesticated canid"),
    ("n", 1100, ["orange"], "round yellow to orange fruit"),
    ("n", 1200, ["circle"], "ellipse in which the two axes are of equal length"),
    ("n", 1300, ["cat"], "feline mammal"),
    ("a", 1000, ["orange", "orangish"], "of the color between red and yellow"),
    ("v", 1200, ["run"], "move fast by using one's feet"),
]


def write_wordnet(folder, synsets=SYNSETS):
    """A WordNet corpus in nltk's file format (the Princeton ``dict`` files nltk_data ships): each
    ``data.<pos>`` with the license header lines (two leading spaces) and one line per synset at its
    byte offset, ``index.<pos>`` mapping lemmas to offsets, ``lexnames``, the ``*.exc`` exception
    lists and ``index.sense``."""
    folder.mkdir(parents=True)
    (folder / "lexnames").write_text("00\tadj.all\t3\n01\tadv.all\t4\n02\tnoun.Tops\t1\n03\tverb.body\t2\n")
    for pos, name in POS_FILES.items():
        lines = ["  1 WordNet 3.0 Copyright 2006 by Princeton University.  All rights reserved.\n"]
        index = {}
        for _, offset, words, gloss in sorted(s for s in synsets if s[0] == pos):
            gap = offset - len("".join(lines).encode())
            assert gap == 0 or gap >= 3, "synsets too close for a padding line"
            lines += ["  " + "x" * (gap - 3) + "\n"] if gap else []
            frames = " 00" if pos == "v" else ""  # a verb lists its frames (none here)
            lemmas = " ".join(f"{w} 0" for w in words)
            lines.append(f"{offset:08d} {LEXNUM[pos]:02d} {pos} {len(words):02x} {lemmas} 000{frames} | {gloss}  \n")
            for word in words:
                index.setdefault(word, []).append(offset)
        (folder / f"data.{name}").write_text("".join(lines))
        entries = [
            f"{w} {pos} {len(o)} 0 {len(o)} 0 {' '.join(f'{x:08d}' for x in o)}  \n" for w, o in sorted(index.items())
        ]
        (folder / f"index.{name}").write_text("  1 index\n" + "".join(entries))
        (folder / f"{name}.exc").write_text("")
    (folder / "index.sense").write_text("")


@pytest.fixture(scope="module")
def wordnet(tmp_path_factory):
    """nltk_data's ``wordnet.zip`` (members under ``wordnet/``) and ImageNet-21k's id list, served
    here and fetched through their `models` entries (the zip unpacked)."""
    root = tmp_path_factory.mktemp("wordnet")
    write_wordnet(root / "src" / "wordnet")
    with zipfile.ZipFile(root / "wordnet.zip", "w") as zf:
        for path in sorted((root / "src" / "wordnet").iterdir()):
            zf.write(path, f"wordnet/{path.name}")
    (root / "imagenet21k_wordnet_ids.txt").write_text("n00001000\nn00001100\nn00001200\n")
    record = fetch_model("wordnet", url_entry(root / "wordnet.zip", unpack="zip"), root / "fetched-wordnet")
    fetch_model("imagenet21k-wordnet-ids", url_entry(root / "imagenet21k_wordnet_ids.txt"), root / "fetched-ids")
    return {"record": record, "wordnet": root / "fetched-wordnet", "synsets": root / "fetched-ids"}


def test_fetched_wordnet_gives_each_words_first_synset(wordnet):
    assert wordnet["record"]["unpacked"] == ["wordnet"] and (wordnet["wordnet"] / "wordnet" / "data.noun").is_file()
    lookup = wordnet_lookup(wordnet["wordnet"])
    # nltk lower-cases and lemmatises; the first synset of "orange" is the noun (the fruit); no
    # punctuation is stripped
    got = {w: lookup(w) for w in ["dogs", "Dog", "orange", "orange,", "runs", "cat", "unicorn"]}
    assert got == {
        "dogs": 1000,
        "Dog": 1000,
        "orange": 1100,
        "orange,": None,
        "runs": 1200,
        "cat": 1300,
        "unicorn": None,
    }
    assert read_wnids(wordnet["synsets"]) == {1000, 1100, 1200}


def test_text_based_with_wordnet_on_a_pool(wordnet, tmp_path):
    texts = [
        "a brown dog sleeping on the grass",  # dog: a target
        "a ripe orange on a wooden table",  # orange: the fruit, a target
        "an orange, a lemon and a banana",  # "orange," has no synset; the rest none either
        "the old man runs along the river",  # runs: a verb at a target noun's offset (DataComp's quirk)
        "a grey cat sleeping on the sofa",  # cat: not a target
        "ein brauner Hund schläft auf dem Rasen",  # not English
    ]
    folder = tmp_path / "shards"
    with ShardWriter(folder, 0, 10) as writer:
        for i, text in enumerate(texts):
            writer.write(jpg_bytes((10, 10, 10)), text, {"uid": uid(i), "url": f"http://x/{i}"})
    entry = selection("text_based", langid_model=GCLD3, concepts="wordnet")
    assert (entry["wordnet"], entry["synsets"]) == ("wordnet", "imagenet21k-wordnet-ids")
    inputs = {
        "metadata": sorted(folder.glob("*.parquet")),
        "wordnet": wordnet["wordnet"],
        "synsets": wordnet["synsets"],
    }
    assert SELECTIONS["text_based"].run(entry, inputs) == [uid(0), uid(1), uid(3)]


def test_an_archive_member_outside_the_folder_is_refused(tmp_path):
    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as zf:
        zf.writestr("../outside.txt", "x")
    with pytest.raises(ValueError, match="outside"):
        unpack_zip(tmp_path / "evil.zip", tmp_path / "out")
    assert not (tmp_path / "outside.txt").exists()


# ---- Config and paths -----------------------------------------------------------------------------


def test_pretrained_entries_load_from_their_models_folders():
    config = load_config(overrides={"scale": "paper"})
    ws = Workspace(config)
    models = "data/models"
    assert ws.captioner_model("blip-b16-14m") == f"{models}/converted/blip-b16-14m"
    assert ws.captioner_model("git-base-10m") == f"{models}/pretrained/git-base-10m"
    assert ws.captioner_model("tiny-blip") == f"{models}/captioners/tiny-blip"
    assert (
        config["captioners"]["blip-b16-14m"]["image_size"] == 224
        and config["captioners"]["tiny-blip"]["image_size"] is None
    )
    assert ws.sentence_encoder_model("all-minilm-l6-v2") == f"{models}/pretrained/all-minilm-l6-v2"
    assert ws.sentence_encoder_model("blip-text-14m") == f"{models}/converted/blip-itm-b16-14m"
    assert ws.sentence_encoder_model("openai-clip-text") == f"{models}/pretrained/openai-clip-l14"
    assert ws.langid_model("fasttext-lid176") == f"{models}/pretrained/fasttext-lid176"
    assert ws.langid_model("gcld3") is None and ws.langid_model("synthetic-lid").endswith("langid/synthetic-lid.bin")
    text_based = ws.selection_inputs("datacomp-medium", "text_based_datacomp")
    assert (text_based["wordnet"], text_based["synsets"]) == (
        f"{models}/pretrained/wordnet",
        f"{models}/pretrained/imagenet21k-wordnet-ids",
    )
    assert "langid" not in ws.selection_inputs("datacomp-medium", "laion2b_filter")
    assert ws.selection_params("laion2b_filter")["langid_model"]["library"] == "gcld3"
    caps1 = ws.scorer_inputs("sieve-blip14m-caps1", "datacomp-medium", "00000")
    assert caps1["captions"] == "data/captions/datacomp-medium/blip-b16-14m/00000.parquet"
    assert config["scorers"]["sieve-blip14m-caps1"]["num_captions"] == 1
    assert config["scorers"]["sieve-blip14m"]["num_captions"] is None
    assert config["models"]["blip-b16-14m"]["convert"] == "blip_caption"
    assert config["models"]["fasttext-lid176"]["url"].endswith("/supervised-models/lid.176.bin")


@pytest.mark.parametrize(
    "section, name, entry, message",
    [
        ("captioners", "c", {"source": "pretrained", "model": "openai-clip-l14"}, "captioners.c.model"),
        ("captioners", "c", {"source": "pretrained", "model": "blip-itm-b16-pt"}, "convert: blip_caption"),
        ("captioners", "c", {"source": "pretrained"}, "captioners.c.model: required"),
        ("sentence_encoders", "s", {"library": "open_clip", "model": "all-minilm-l6-v2"}, "sentence_encoders.s.model"),
        ("sentence_encoders", "s", {"library": "blip_itm", "model": "blip-b16-14m"}, "convert: blip_itm"),
        ("langid_models", "l", {"source": "pretrained", "model": "wordnet", "seed": 0}, "langid_models.l.seed"),
        ("langid_models", "l", {"library": "gcld3", "max_num_bytes": 0}, "langid_models.l.max_num_bytes"),
    ],
)
def test_component_config_errors_name_the_key(user_config, section, name, entry, message):
    user_config[section][name] = entry
    with pytest.raises(ConfigError, match=message):
        check_config(user_config)
