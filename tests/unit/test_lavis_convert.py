"""A LAVIS-trained BLIP in transformers' layout (curate.training.lavis_convert), the LAVIS model built
from tiny inits (curate.training.lavis_inits), and LAVIS itself run in its own venv where it is built."""

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from curate.training.lavis_config import ARCH_FILE, CHECKPOINT_DIR, LAVIS_VENV, run_config, vit_arch
from curate.training.lavis_convert import convert_lavis_blip, convert_state, lavis_key, split_state_dict
from curate.training.lavis_inits import tiny_bert_folder, tiny_deit_checkpoint

ROOT = Path(__file__).resolve().parents[2]
#: {key: shape} of a whole tiny weighted_blip_pretrain state dict (momentum encoders and queues
#: included) as LAVIS 1.0.2 builds it, and the arch.json of its run
FIXTURE = json.loads((Path(__file__).parent / "data" / "lavis_blip_pretrain_tiny.json").read_text())
LAVIS_PYTHON = LAVIS_VENV / "bin" / "python"
needs_lavis = pytest.mark.skipif(
    not LAVIS_PYTHON.is_file(), reason="LAVIS's virtualenv .venv-lavis is not built (./setup-lavis.sh builds it)"
)
TEXTS = ["a red circle on a blue field", "two green squares", "a photo of a yellow triangle", "0123456789"]


def _vocab(arch):
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += [f"w{i}" for i in range(arch["tokens"]["vocab_size"] - 2 - len(vocab))]
    return vocab


def test_every_lavis_key_has_a_place_in_transformers_blip(tmp_path):
    """Random tensors in the shapes of a whole LAVIS state dict convert with every retrieval and
    captioner weight filled (strict), the momentum encoders and queues dropped, nothing else."""
    from transformers import BertTokenizer

    arch, shapes = FIXTURE["arch"], FIXTURE["shapes"]
    (tmp_path / "vocab.txt").write_text("\n".join(_vocab(arch)) + "\n")
    tokenizer = BertTokenizer(str(tmp_path / "vocab.txt"))
    generator = torch.Generator().manual_seed(0)
    state = {k: torch.randn(s, generator=generator) if s else torch.tensor(0.07) for k, s in shapes.items()}
    state["queue_ptr"] = torch.zeros(1, dtype=torch.long)
    retrieval, captioner, dropped = split_state_dict(state)
    assert {k.split(".", 1)[0] for k in dropped} == {
        "visual_encoder_m",
        "text_encoder_m",
        "vision_proj_m",
        "text_proj_m",
        "image_queue",
        "text_queue",
        "queue_ptr",
    }
    assert "vision_model.encoder.layers.0.self_attn.qkv.weight" in retrieval
    assert "vision_model.embeddings.class_embedding" in captioner
    assert "text_decoder.cls.predictions.transform.dense.weight" in captioner
    model, processor, _ = convert_state(state, arch, tokenizer)
    assert model.captioner.vision_model is model.retrieval.vision_model
    torch.testing.assert_close(
        model.retrieval.vision_model.encoder.layers[1].mlp.fc2.weight, state["visual_encoder.blocks.1.mlp.fc2.weight"]
    )
    torch.testing.assert_close(
        model.captioner.text_decoder.bert.encoder.layer[0].crossattention.self.query.weight,
        state["text_decoder.bert.encoder.layer.0.crossattention.self.query.weight"],
    )
    assert model.temp.item() == pytest.approx(0.07) and model.text_pooling == "cls"
    assert processor.image_processor.size == {"height": 32, "width": 32}
    with pytest.raises(ValueError, match="unknown LAVIS"):
        lavis_key("prompt_encoder.weight")
    with pytest.raises(ValueError, match="without a place|missing"):
        convert_state({k: v for k, v in state.items() if k != "itm_head.weight"}, arch, tokenizer)


def test_vit_arch_is_read_off_a_deit_checkpoint(tmp_path):
    path = tiny_deit_checkpoint(tmp_path / "deit.pth", width=128, depth=3, patch_size=8, image_size=32)
    state = torch.load(path, weights_only=True)["model"]
    assert vit_arch({k: tuple(v.shape) for k, v in state.items()}) == {
        "width": 128,
        "depth": 3,
        "heads": 2,
        "patch_size": 8,
        "mlp_ratio": 4.0,
    }
    # DeiT-B/16 (LAVIS's init): 12 heads of 64
    assert (
        vit_arch(
            {
                "cls_token": (1, 1, 768),
                "patch_embed.proj.weight": (768, 3, 16, 16),
                "blocks.0.mlp.fc1.weight": (3072, 768),
                **{f"blocks.{i}.norm1.weight": (768,) for i in range(12)},
            }
        )["heads"]
        == 12
    )
    with pytest.raises(ValueError, match="not a DeiT"):
        vit_arch({"pos_embed": (1, 5, 64)})


def tiny_lavis_run(root: Path, image_size: int = 32) -> Path:
    """A LAVIS run config over tiny inits (no reshard: the model alone is built from it)."""
    tiny_deit_checkpoint(root / "deit_base_patch16_224-b5f2ef4d.pth", image_size=image_size, seed=1)
    tiny_bert_folder(root / "bert", TEXTS, seed=2)
    recipe = {
        **yaml.safe_load((ROOT / "config" / "recipes.yaml").read_text())["recipes"]["mos-blip"],
        **dict(image_size=image_size, queue_size=16, batch_size=8, world_size=2, nodes=1, device="cpu", workers=0),
    }
    cfg = run_config(
        recipe, root / "reshard", root / "run", 0, root / "deit_base_patch16_224-b5f2ef4d.pth", root / "bert"
    )
    (root / "run").mkdir()
    (root / "run" / "lavis_run.yaml").write_text(yaml.safe_dump(cfg))
    return root / "run"


@pytest.mark.slow
@needs_lavis
def test_converted_model_computes_what_lavis_computes(tmp_path):
    """LAVIS's weighted_blip_pretrain built from tiny DeiT/BERT files (in its venv) and its
    conversion (here) give the same ITC features, ITM logits and decoder logits, to 1e-5."""
    from curate.training.blip import load_blip, tokenize

    run = tiny_lavis_run(tmp_path)
    # LAVIS builds the model, saves it as its runner does (checkpoint, arch.json, tokenizer/)
    inputs = tmp_path / "inputs.npz"
    generator = torch.Generator().manual_seed(0)
    pixels = torch.randn(3, 3, 32, 32, generator=generator)
    reference = tmp_path / "reference.npz"

    def lavis(inputs_file):
        subprocess.run(
            [
                str(LAVIS_PYTHON),
                "-m",
                "curate.training.lavis_blip",
                "reference",
                str(run / "lavis_run.yaml"),
                str(inputs_file),
                str(reference),
            ],
            check=True,
            cwd=tmp_path,
            env=dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1"),
            capture_output=True,
        )

    np.savez(inputs, pixel_values=pixels.numpy(), input_ids=np.ones((1, 4), np.int64), attention_mask=np.ones((1, 4)))
    lavis(inputs)  # writes the run's checkpoint_0.pth, arch.json and tokenizer
    assert (run / CHECKPOINT_DIR / "checkpoint_0.pth").is_file() and (run / ARCH_FILE).is_file()
    record = convert_lavis_blip(run, tmp_path / "converted")
    assert record["dropped_prefixes"] == ["image_queue", "queue_ptr", "text_queue"]
    model, processor = load_blip(tmp_path / "converted")
    ids, mask = tokenize(processor, TEXTS[:3])
    np.savez(inputs, pixel_values=pixels.numpy(), input_ids=ids.numpy(), attention_mask=mask.numpy())
    lavis(inputs)  # the same model, loaded from its checkpoint, on the real inputs
    expected = np.load(reference)
    with torch.no_grad():
        embeds = model.image_embeds(pixels)
        found = {
            "image_feat": model.image_features(embeds),
            "text_feat": model.text_features(ids, mask),
            "itm_logits": model.itm_logits(ids, mask, embeds),
            "decoder_logits": model.decoder_logits(ids, mask, embeds)[0],
        }
    for key, value in found.items():
        np.testing.assert_allclose(value.numpy(), expected[key], atol=1e-5, rtol=0, err_msg=key)
    assert model.temp.item() == pytest.approx(float(expected["temp"]))
    # the special tokens LAVIS trained with
    assert processor.tokenizer.convert_ids_to_tokens([int(ids[0, 0]), model.enc_token_id]) == ["[CLS]", "[ENC]"]
    assert model.text_config.bos_token_id == processor.tokenizer.convert_tokens_to_ids("[DEC]")
    assert (
        processor.tokenizer.decode([model.text_config.bos_token_id, model.enc_token_id], skip_special_tokens=True) == ""
    )
