"""Tests of curate.scoring.captioning: the Sieve captioner through transformers' BLIP classes (§4)."""

import os
import re
from dataclasses import replace

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch

from curate.data.shards import iter_webdataset_pairs
from curate.data.synthetic import captions as cap
from curate.data.synthetic.render import render_scene
from curate.data.synthetic.world import COLOUR_NAMES, STREAM_CURATED, random_scene, rng_for
from curate.scoring.captioning import (
    CAPTION_SETTINGS,
    CLIP_MEAN,
    CLIP_STD,
    batch_seed,
    build_tiny_captioner,
    generate_caption_ids,
    generate_captions,
    load_captioner,
)

torch.set_num_threads(1)

N_TRAIN = 1000
TRAIN_STEPS = 200
HELD_OUT_STREAM = 99  # none of the world's streams: images the captioner never saw


def _scenes(n, seed, stream):
    rng = rng_for(seed, stream)
    out = []
    for _ in range(n):
        scene = random_scene(rng)
        out.append((scene, render_scene(scene, 64, 64, rng)))
    return out


@pytest.fixture(scope="module")
def captioners(tmp_path_factory):
    """A tiny captioner trained briefly on clean (image, canonical caption) pairs, and the same
    architecture untrained (steps=0). Canonical captions (one wording per scene) make the
    image -> colour mapping learnable in a few seconds; paraphrases need ~1000 steps."""
    root = tmp_path_factory.mktemp("captioners")
    pairs = [(img, cap.canonical_caption(s)) for s, img in _scenes(N_TRAIN, 0, STREAM_CURATED)]
    info = build_tiny_captioner(root / "trained", pairs, seed=0, steps=TRAIN_STEPS)
    info0 = build_tiny_captioner(root / "untrained", pairs, seed=0, steps=0)
    return {
        "trained": load_captioner(root / "trained"),
        "untrained": load_captioner(f"local-dir:{root / 'untrained'}"),
        "info": info,
        "info0": info0,
    }


@pytest.fixture(scope="module")
def held_out():
    return _scenes(10, 1, HELD_OUT_STREAM)


def test_settings_match_algorithms():
    s = CAPTION_SETTINGS
    assert s.prompt == "a picture of "
    assert (s.do_sample, s.top_p, s.top_k, s.temperature) == (True, 0.9, 50, 1.0)
    assert (s.repetition_penalty, s.min_length, s.max_length, s.num_captions) == (1.1, 5, 20, 8)
    kw = s.generate_kwargs()
    assert kw["num_return_sequences"] == 8 and kw["max_length"] == 20 and kw["min_length"] == 5


@pytest.mark.slow  # uses the module's trained models (built once, ~10 s)
def test_round_trip_config_and_processor(captioners):
    model, proc = captioners["trained"]
    assert not model.training
    tok = proc.tokenizer
    tc = model.config.text_config
    # BLIP's id conventions: [DEC] is the decoder bos, [SEP] ends a caption, [PAD] pads
    assert tok.bos_token == "[DEC]" and tc.bos_token_id == tok.bos_token_id
    assert tc.sep_token_id == tok.sep_token_id and tc.pad_token_id == tok.pad_token_id == 0
    assert tc.vocab_size == len(tok)
    ip = proc.image_processor
    assert model.config.vision_config.image_size == 64
    assert ip.crop_size["height"] == ip.crop_size["width"] == 64 and ip.do_center_crop
    assert ip.size["shortest_edge"] == 64 and int(ip.resample) == 3  # bicubic
    assert tuple(ip.image_mean) == pytest.approx(CLIP_MEAN) and tuple(ip.image_std) == pytest.approx(CLIP_STD)
    info = captioners["info"]
    assert info["final_loss"] < info["first_loss"]


@pytest.mark.slow  # uses the module's trained models (built once, ~10 s)
def test_seeded_generation(captioners, held_out):
    model, proc = captioners["trained"]
    images = [img for _, img in held_out[:4]]
    state = torch.get_rng_state()
    a = generate_captions(model, proc, images, seed=7, batch_size=2)
    assert torch.equal(state, torch.get_rng_state())  # the global RNG is left alone
    torch.manual_seed(12345)  # whatever ran before does not matter
    b = generate_captions(model, proc, images, seed=7, batch_size=2)
    c = generate_captions(model, proc, images, seed=8, batch_size=2)
    assert a == b
    assert a != c
    # a batch's captions depend on (seed, batch index) only: the 2nd batch alone, at index 1
    ids = generate_caption_ids(model, proc, images[2:], seed=7, batch_index=1)
    texts = proc.tokenizer.batch_decode(ids, skip_special_tokens=True)
    assert [t[len("a picture of ") :] for t in texts] == [x for caps in a[2:] for x in caps]
    assert batch_seed(7, 0) != batch_seed(7, 1) != batch_seed(8, 1)


@pytest.mark.slow  # uses the module's trained models (built once, ~10 s)
def test_eight_captions_prompt_stripped(captioners, held_out):
    model, proc = captioners["trained"]
    caps = generate_captions(model, proc, [img for _, img in held_out], seed=0, batch_size=4)
    assert len(caps) == len(held_out)
    assert all(len(c) == 8 for c in caps)
    flat = [c for cs in caps for c in cs]
    assert all(not c.lower().startswith("a picture of") for c in flat)
    assert sum(c.strip() != "" for c in flat) == len(flat)


@pytest.mark.slow  # uses the module's trained models (built once, ~10 s)
@pytest.mark.parametrize("which", ["trained", "untrained"])
def test_length_bounds_count_the_prompt(captioners, held_out, which):
    """max_length / min_length bound the whole sequence, [DEC] + prompt included."""
    model, proc = captioners[which]
    tok = proc.tokenizer
    prompt_ids = tok("a picture of ")["input_ids"][1:-1]
    assert len(prompt_ids) == 3  # "a", "picture", "of": the decoder starts from 4 tokens
    images = [img for _, img in held_out]
    for settings in (CAPTION_SETTINGS, replace(CAPTION_SETTINGS, min_length=12, max_length=16)):
        ids = generate_caption_ids(model, proc, images, seed=3, settings=settings)
        assert ids.shape[0] == len(images) * 8
        assert ids.shape[1] <= settings.max_length
        assert (ids[:, 0] == tok.bos_token_id).all()
        assert (ids[:, 1:4] == torch.tensor(prompt_ids)).all()
        for row in ids.tolist():
            if tok.sep_token_id in row:  # [SEP] (eos) is blocked before index min_length
                assert row.index(tok.sep_token_id) >= settings.min_length
    if which == "trained":  # the trained captioner ends captions itself, well within 20 tokens
        ids = generate_caption_ids(model, proc, images, seed=3)
        ended = [tok.sep_token_id in row for row in ids.tolist()]
        assert np.mean(ended) > 0.9


def _correct_word_rate(captions, scenes):
    """Fraction of captions naming the scene's colour (any synonym) and of captions naming its
    shape (any synonym word), as whole words."""
    colour = shape = total = 0
    for cs, scene in zip(captions, scenes):
        colour_words = set(cap.COLOUR_SYNONYMS[scene.colour])
        shape_words = {w for pair in cap.SHAPE_SYNONYMS[scene.shape] for form in pair for w in form.split()}
        for c in cs:
            words = set(re.findall(r"[a-z]+(?:-[a-z]+)?", c.lower()))
            colour += bool(words & colour_words)
            shape += bool(words & shape_words)
            total += 1
    return colour / total, shape / total


@pytest.mark.slow  # uses the module's trained models (built once, ~10 s)
def test_training_teaches_colour_and_shape_words(captioners):
    held_out = _scenes(20, 2, HELD_OUT_STREAM)
    scenes = [s for s, _ in held_out]
    images = [img for _, img in held_out]
    rates = {}
    for which in ("trained", "untrained"):
        model, proc = captioners[which]
        rates[which] = _correct_word_rate(generate_captions(model, proc, images, seed=0), scenes)
    (c1, s1), (c0, s0) = rates["trained"], rates["untrained"]
    assert c1 + s1 > c0 + s0 + 0.3
    # the trained captioner looks at the image: the right colour well above chance (1/8)
    # (about 0.6-0.85 over training seeds; the untrained one about 0.1)
    assert c1 > 3.0 / len(COLOUR_NAMES)


def test_build_is_deterministic(tmp_path):
    pairs = [(img, cap.canonical_caption(s)) for s, img in _scenes(16, 5, STREAM_CURATED)]
    build_tiny_captioner(tmp_path / "a", pairs, seed=3, steps=3, batch_size=8)
    build_tiny_captioner(tmp_path / "b", pairs, seed=3, steps=3, batch_size=8)
    ma, _ = load_captioner(tmp_path / "a")
    mb, _ = load_captioner(tmp_path / "b")
    sa, sb = ma.state_dict(), mb.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    with pytest.raises(ValueError):
        build_tiny_captioner(tmp_path / "c", [], seed=0, steps=1)


@pytest.mark.slow  # uses the module's trained models (built once, ~10 s)
def test_clip_style_override_and_non_square_images(captioners, tmp_path):
    """load_captioner(image_size=...) swaps in CLIP-style preprocessing (shortest edge, center
    crop); a size other than the model's is handled by interpolating position embeddings."""
    model, proc = captioners["trained"]
    src = tmp_path / "cap"
    model.save_pretrained(src)
    proc.save_pretrained(src)
    m2, p2 = load_captioner(src, image_size=96)
    assert p2.image_processor.crop_size == {"height": 96, "width": 96}
    wide = render_scene(random_scene(rng_for(0, HELD_OUT_STREAM, 1)), 150, 80, rng_for(0, HELD_OUT_STREAM, 2))
    pix = p2.image_processor(images=[wide], return_tensors="pt")["pixel_values"]
    assert tuple(pix.shape) == (1, 3, 96, 96)
    caps = generate_captions(m2, p2, [wide], seed=0, settings=replace(CAPTION_SETTINGS, num_captions=2))
    assert len(caps) == 1 and len(caps[0]) == 2
    # the saved processor of the tiny model: non-square images are center-cropped to 64
    pix = proc.image_processor(images=[wide], return_tensors="pt")["pixel_values"]
    assert tuple(pix.shape) == (1, 3, 64, 64)


def test_iter_webdataset_pairs(tmp_path):
    from curate.data.synthetic.curated import write_curated_set

    info = write_curated_set(tmp_path / "cur", n_samples=7, seed=0, samples_per_shard=3)
    pairs = list(iter_webdataset_pairs(info["shards"]))
    assert len(pairs) == 7
    assert all(img.size == (64, 64) and img.mode == "RGB" and isinstance(t, str) and t for img, t in pairs)
