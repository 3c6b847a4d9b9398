import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(1)

from curate.scoring.clip import (  # noqa: E402
    CONFIG_NAME,
    WEIGHTS_NAME,
    arch_config_path,
    available_archs,
    encode,
    export_local_dir,
    load_model,
    write_arch_dir,
)

ARCHS = ("tiny-vit", "tiny-vit-narrow")


def images(n, size=64):
    colours = [(200, 20, 20), (20, 20, 200), (20, 180, 20), (220, 220, 30)]
    return [Image.new("RGB", (size, size), colours[i % 4]) for i in range(n)]


TEXTS = ["a red square", "a blue square", "a green circle", "two yellow triangles", "the digit 7"]


@pytest.mark.parametrize("arch", ARCHS)
def test_arch_configs_are_open_clip_model_configs(arch):
    path = arch_config_path(arch)
    cfg = json.loads(path.read_text())
    assert {"embed_dim", "vision_cfg", "text_cfg"} <= set(cfg)
    assert cfg["text_cfg"]["context_length"] == 32
    assert cfg["text_cfg"]["vocab_size"] == 49408
    assert arch in available_archs()


def test_unknown_arch_raises():
    with pytest.raises(ValueError, match="unknown CLIP architecture"):
        arch_config_path("no-such-arch")


def test_arch_dir_gives_random_model_and_tokenizer(tmp_path):
    folder = write_arch_dir("tiny-vit-narrow", tmp_path / "arch")
    config = json.loads((folder / CONFIG_NAME).read_text())
    assert config["model_cfg"] == json.loads(arch_config_path("tiny-vit-narrow").read_text())
    assert config["preprocess_cfg"]["size"] == config["model_cfg"]["vision_cfg"]["image_size"]
    model, preprocess, tokenizer = load_model(f"local-dir:{folder}")
    assert not model.training
    assert tokenizer(["a red square"]).shape == (1, 32)
    assert preprocess(images(1)[0]).shape == (3, 32, 32)
    (folder / WEIGHTS_NAME).write_bytes(b"")
    with pytest.raises(ValueError, match="holds weights"):
        write_arch_dir("tiny-vit-narrow", folder)


def _fake_train_checkpoint(model, path):
    """What open_clip_train saves: epoch, name, optimizer and a DDP-prefixed state dict."""
    state = {f"module.{k}": v.clone() for k, v in model.state_dict().items()}
    torch.save({"epoch": 1, "name": "run", "state_dict": state, "optimizer": {}}, path)


def test_export_load_round_trip_gives_identical_encodings(tmp_path):
    torch.manual_seed(0)
    arch_dir = write_arch_dir("tiny-vit-narrow", tmp_path / "arch")
    model, preprocess, tokenizer = load_model(str(arch_dir))  # a plain folder path works too
    ckpt = tmp_path / "epoch_1.pt"
    _fake_train_checkpoint(model, ckpt)
    out = export_local_dir(ckpt, "tiny-vit-narrow", tmp_path / "model")
    assert sorted(p.name for p in out.iterdir()) == [CONFIG_NAME, WEIGHTS_NAME]

    ims = images(5)
    img0, txt0 = encode(model, preprocess, tokenizer, ims, TEXTS, batch_size=2)
    loaded, preprocess1, tokenizer1 = load_model(f"local-dir:{out}")
    img1, txt1 = encode(loaded, preprocess1, tokenizer1, ims, TEXTS, batch_size=2)
    assert img0.dtype == np.float32 and txt0.dtype == np.float32
    assert img0.shape == (5, 64) and txt0.shape == (5, 64)
    np.testing.assert_allclose(np.linalg.norm(img0, axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(txt0, axis=1), 1, rtol=1e-5)
    np.testing.assert_array_equal(img0, img1)
    np.testing.assert_array_equal(txt0, txt1)

    # the same weights through "arch name + pretrained file": one loader, same model
    by_name, preprocess2, tokenizer2 = load_model("tiny-vit-narrow", pretrained=str(out / WEIGHTS_NAME))
    img2, txt2 = encode(by_name, preprocess2, tokenizer2, ims, TEXTS, batch_size=2)
    np.testing.assert_array_equal(img0, img2)
    np.testing.assert_array_equal(txt0, txt2)
    # batching changes nothing beyond float rounding
    img3, txt3 = encode(loaded, preprocess1, tokenizer1, ims, TEXTS, batch_size=5)
    np.testing.assert_allclose(img3, img0, atol=1e-6)
    np.testing.assert_allclose(txt3, txt0, atol=1e-6)


def test_export_rejects_weights_of_another_arch(tmp_path):
    model, _, _ = load_model(str(write_arch_dir("tiny-vit-narrow", tmp_path / "arch")))
    ckpt = tmp_path / "epoch_1.pt"
    _fake_train_checkpoint(model, ckpt)
    with pytest.raises(ValueError, match="do not fit architecture 'tiny-vit'"):
        export_local_dir(ckpt, "tiny-vit", tmp_path / "model")
    with pytest.raises(FileNotFoundError):
        export_local_dir(tmp_path / "missing.pt", "tiny-vit", tmp_path / "model")


def test_load_model_argument_errors(tmp_path):
    folder = write_arch_dir("tiny-vit-narrow", tmp_path / "arch")
    with pytest.raises(ValueError, match="names its own weights"):
        load_model(f"local-dir:{folder}", pretrained="x.safetensors")
    with pytest.raises(FileNotFoundError):
        load_model(f"local-dir:{tmp_path / 'nothing'}")


def test_encode_empty_inputs(tmp_path):
    model, preprocess, tokenizer = load_model(str(write_arch_dir("tiny-vit-narrow", tmp_path / "arch")))
    img, txt = encode(model, preprocess, tokenizer, [], ["only text"], batch_size=8)
    assert img.shape == (0, 64) and txt.shape == (1, 64)
    assert img.dtype == np.float32
