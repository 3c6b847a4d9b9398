"""Tiny BLIP and BLIP-2 models as their sources deliver them.

- Hugging Face snapshots (``Salesforce/blip-itm-*-coco``, ``Salesforce/blip-image-captioning-base``,
  ``Salesforce/blip2-itm-vit-g*``): ``save_pretrained`` of transformers' ``BlipForImageTextRetrieval``
  / ``BlipForConditionalGeneration`` / ``Blip2ForImageTextRetrieval``
  with their processors (``config.json``, ``model.safetensors``, ``preprocessor_config.json``,
  ``processor_config.json``, tokenizer files), as the Hub's repos hold them.
- salesforce/BLIP's original checkpoints (``model_base.pth``, ``model_large.pth``,
  ``model_base_14M.pth``): ``{"model": state_dict}`` of ``BLIP_Pretrain`` in its own key layout,
  written from the layout of its modules (``models/blip_pretrain.py``, ``vit.py``, ``med.py``), not
  from transformers' renaming: the timm-style ViT (``visual_encoder.cls_token``, ``pos_embed``,
  ``patch_embed.proj``, ``blocks.N.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}``, ``norm``),
  the BERT text encoder with cross-attention in every layer (no pooler, no token types), the ITC
  projections and ITM head, momentum copies (``*_m``), the queues and ``temp``, and the captioning
  decoder (``text_decoder.bert.*`` + ``text_decoder.cls.predictions.*``) whose weights are the
  encoder's except its self-attention (BLIP ties them, ``tie_encoder_decoder_weights``).
- LAVIS's ``blip2_pretrained_vitL.pth``: ``{"model": state_dict}`` of ``Blip2Qformer`` as LAVIS saves
  it (frozen parameters dropped, so no ViT): ``query_tokens``, ``temp``, ``ln_vision``, the
  Q-Former (``Qformer.bert.*`` with cross-attention every second layer and the query branch's
  ``intermediate_query`` / ``output_query``, ``Qformer.cls.predictions.*``), ``vision_proj``,
  ``text_proj``, ``itm_head``.

All share one tokenizer, BERT's layout with BLIP's ``[DEC]`` and ``[ENC]``
(`curate.scoring.captioning.train_wordpiece_tokenizer` over the synthetic world's captions), as the
real ones share bert-base-uncased's: a converted original checkpoint takes the tokenizer of its
``processor`` model (a Hub snapshot), so their vocabularies must agree. Widths are multiples of 64:
`curate.scoring.itm.convert_blip_checkpoint` reads the number of heads off the widths with BLIP's
64-wide heads.
"""

from __future__ import annotations

from pathlib import Path

from curate.rehearsal.model_common import english_captions, seeded
from curate.rehearsal.model_hf import save_processor_files

VOCAB_SIZE = 400
TEXT_WIDTH = 64
TEXT_LAYERS = 2
MAX_POSITIONS = 64
EMBED_DIM = 32
QUEUE_SIZE = 64
PROMPT = "a picture of "


def blip_tokenizer(seed: int):
    """The tiny BLIP tokenizer every BLIP-family model here shares."""
    from curate.scoring.captioning import train_wordpiece_tokenizer

    return train_wordpiece_tokenizer(english_captions(seed), vocab_size=VOCAB_SIZE, extra_texts=[PROMPT])


def image_processor(size: int):
    """BLIP's image processor (square resize, bicubic, CLIP's mean and std) at `size` px."""
    from transformers import BlipImageProcessor
    from transformers.image_utils import PILImageResampling

    from curate.scoring.captioning import CLIP_MEAN, CLIP_STD

    return BlipImageProcessor(
        size={"height": int(size), "width": int(size)},
        resample=PILImageResampling.BICUBIC,
        image_mean=list(CLIP_MEAN),
        image_std=list(CLIP_STD),
    )


def _spread(model, scale: float = 0.5) -> None:
    """Give parameters transformers starts at zero or one (query tokens) a spread: the tiny
    models' outputs must depend on their inputs."""
    import torch

    with torch.no_grad():
        for name, p in model.named_parameters():
            if "query_tokens" in name:
                p.normal_(0, scale)


# --------------------------------------------------------------------------- Hub snapshots
def build_blip_itm_snapshot(folder, tokenizer, seed: int, vision_width: int, image_size: int, patch: int = 16) -> Path:
    """A ``Salesforce/blip-itm-*-coco`` snapshot: ``BlipForImageTextRetrieval`` + ``BlipProcessor``."""
    return _build_blip_snapshot("BlipForImageTextRetrieval", folder, tokenizer, seed, vision_width, image_size, patch)


def build_blip_caption_snapshot(
    folder, tokenizer, seed: int, vision_width: int, image_size: int, patch: int = 16
) -> Path:
    """``Salesforce/blip-image-captioning-base``: ``BlipForConditionalGeneration`` + ``BlipProcessor``
    (the processor Sieve's converted 14M / 129M captioners take)."""
    return _build_blip_snapshot(
        "BlipForConditionalGeneration", folder, tokenizer, seed, vision_width, image_size, patch
    )


def _build_blip_snapshot(class_name, folder, tokenizer, seed, vision_width, image_size, patch) -> Path:
    import transformers
    from transformers import BlipConfig, BlipProcessor

    text = dict(
        vocab_size=len(tokenizer),
        hidden_size=TEXT_WIDTH,
        encoder_hidden_size=vision_width,
        intermediate_size=4 * TEXT_WIDTH,
        num_hidden_layers=TEXT_LAYERS,
        num_attention_heads=TEXT_WIDTH // 64,
        max_position_embeddings=MAX_POSITIONS,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.sep_token_id,
        sep_token_id=tokenizer.sep_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    vision = dict(
        hidden_size=vision_width,
        intermediate_size=4 * vision_width,
        num_hidden_layers=2,
        num_attention_heads=vision_width // 64,
        image_size=image_size,
        patch_size=patch,
    )
    config = BlipConfig(text_config=text, vision_config=vision, image_text_hidden_size=EMBED_DIM)
    with seeded(seed):
        model = getattr(transformers, class_name)(config).eval()
    folder = Path(folder)
    model.save_pretrained(str(folder))
    save_processor_files(BlipProcessor(image_processor(image_size), tokenizer), folder)
    return folder


def build_blip2_itm_snapshot(folder, tokenizer, seed: int, image_size: int, patch: int = 14) -> Path:
    """A ``Salesforce/blip2-itm-vit-g*`` snapshot: ``Blip2ForImageTextRetrieval`` (Q-Former with
    text input, cross-attention every second layer as BLIP-2's) + ``Blip2Processor``."""
    from transformers import Blip2Config, Blip2ForImageTextRetrieval, Blip2Processor

    config = Blip2Config(
        vision_config=dict(
            hidden_size=64,
            intermediate_size=256,
            num_hidden_layers=2,
            num_attention_heads=1,
            image_size=image_size,
            patch_size=patch,
        ),
        qformer_config=dict(
            vocab_size=len(tokenizer),
            hidden_size=TEXT_WIDTH,
            num_hidden_layers=TEXT_LAYERS,
            num_attention_heads=TEXT_WIDTH // 64,
            intermediate_size=4 * TEXT_WIDTH,
            encoder_hidden_size=64,
            cross_attention_frequency=2,
            max_position_embeddings=MAX_POSITIONS,
            pad_token_id=tokenizer.pad_token_id,
            use_qformer_text_input=True,
        ),
        text_config=dict(
            model_type="opt",
            vocab_size=64,
            hidden_size=16,
            num_hidden_layers=1,
            ffn_dim=32,
            num_attention_heads=1,
            word_embed_proj_dim=16,
        ),
        num_query_tokens=8,
        image_text_hidden_size=EMBED_DIM,
    )
    with seeded(seed):
        model = Blip2ForImageTextRetrieval(config).eval()
        _spread(model)
    folder = Path(folder)
    model.save_pretrained(str(folder))
    save_processor_files(Blip2Processor(image_processor(image_size), tokenizer), folder)
    return folder


# --------------------------------------------------------------------------- original checkpoints
class _Tensors:
    """Seeded tensors of the shapes a layout asks for, in the order it asks (a state dict)."""

    def __init__(self, seed: int):
        import torch

        self.torch = torch
        self.gen = torch.Generator().manual_seed(int(seed))
        self.state: dict = {}

    def normal(self, key, *shape, std=None):
        fan_in = shape[-1] if len(shape) > 1 else 1
        std = std if std is not None else fan_in**-0.5
        self.state[key] = self.torch.randn(*shape, generator=self.gen) * std
        return self.state[key]

    def bias(self, key, n):
        return self.normal(key, n, std=0.02)

    def linear(self, prefix, out_features, in_features):
        self.normal(f"{prefix}.weight", out_features, in_features)
        self.bias(f"{prefix}.bias", out_features)

    def layer_norm(self, prefix, n):
        self.state[f"{prefix}.weight"] = 1.0 + self.torch.randn(n, generator=self.gen) * 0.02
        self.bias(f"{prefix}.bias", n)

    def copy(self, src_prefix, dst_prefix, skip=None):
        """``dst_prefix.*`` = the tensors under ``src_prefix.*`` (tied weights), except names holding `skip`."""
        for key in [k for k in self.state if k.startswith(src_prefix + ".")]:
            rest = key[len(src_prefix) + 1 :]
            if skip is None or skip not in rest:
                self.state[f"{dst_prefix}.{rest}"] = self.state[key].clone()


def _vit(t: _Tensors, prefix: str, width: int, depth: int, image_size: int, patch: int = 16) -> None:
    """salesforce/BLIP's ``VisionTransformer`` (timm's layout, qkv with bias)."""
    positions = (image_size // patch) ** 2 + 1
    t.normal(f"{prefix}.cls_token", 1, 1, width, std=0.02)
    t.normal(f"{prefix}.pos_embed", 1, positions, width, std=0.02)
    t.normal(f"{prefix}.patch_embed.proj.weight", width, 3, patch, patch, std=(3 * patch * patch) ** -0.5)
    t.bias(f"{prefix}.patch_embed.proj.bias", width)
    for i in range(depth):
        b = f"{prefix}.blocks.{i}"
        t.layer_norm(f"{b}.norm1", width)
        t.linear(f"{b}.attn.qkv", 3 * width, width)
        t.linear(f"{b}.attn.proj", width, width)
        t.layer_norm(f"{b}.norm2", width)
        t.linear(f"{b}.mlp.fc1", 4 * width, width)
        t.linear(f"{b}.mlp.fc2", width, 4 * width)
    t.layer_norm(f"{prefix}.norm", width)


def _bert_attention(t: _Tensors, prefix: str, width: int, kv_width: int) -> None:
    t.linear(f"{prefix}.self.query", width, width)
    t.linear(f"{prefix}.self.key", width, kv_width)
    t.linear(f"{prefix}.self.value", width, kv_width)
    t.linear(f"{prefix}.output.dense", width, width)
    t.layer_norm(f"{prefix}.output.LayerNorm", width)


def _bert(t: _Tensors, prefix: str, vocab: int, encoder_width: int, cross_every: int = 1, query_branch=False) -> None:
    """BLIP's ``med.BertModel`` (LAVIS's Q-Former's with `query_branch`) without pooler: no token
    type embeddings; cross-attention in every `cross_every`-th layer."""
    t.state[f"{prefix}.embeddings.position_ids"] = t.torch.arange(MAX_POSITIONS).expand((1, -1)).clone()
    t.normal(f"{prefix}.embeddings.word_embeddings.weight", vocab, TEXT_WIDTH, std=0.02)
    t.normal(f"{prefix}.embeddings.position_embeddings.weight", MAX_POSITIONS, TEXT_WIDTH, std=0.02)
    t.layer_norm(f"{prefix}.embeddings.LayerNorm", TEXT_WIDTH)
    for i in range(TEXT_LAYERS):
        layer = f"{prefix}.encoder.layer.{i}"
        _bert_attention(t, f"{layer}.attention", TEXT_WIDTH, TEXT_WIDTH)
        if i % cross_every == 0:
            _bert_attention(t, f"{layer}.crossattention", TEXT_WIDTH, encoder_width)
        branches = ("", "_query") if query_branch else ("",)
        for suffix in branches:
            t.linear(f"{layer}.intermediate{suffix}.dense", 4 * TEXT_WIDTH, TEXT_WIDTH)
            t.linear(f"{layer}.output{suffix}.dense", TEXT_WIDTH, 4 * TEXT_WIDTH)
            t.layer_norm(f"{layer}.output{suffix}.LayerNorm", TEXT_WIDTH)


def _lm_head(t: _Tensors, prefix: str, word_embeddings_key: str, vocab: int) -> None:
    """``BertLMPredictionHead``: its bias (also the decoder's), transform, decoder tied to the word embeddings."""
    t.bias(f"{prefix}.predictions.bias", vocab)
    t.linear(f"{prefix}.predictions.transform.dense", TEXT_WIDTH, TEXT_WIDTH)
    t.layer_norm(f"{prefix}.predictions.transform.LayerNorm", TEXT_WIDTH)
    t.state[f"{prefix}.predictions.decoder.weight"] = t.state[word_embeddings_key].clone()
    t.state[f"{prefix}.predictions.decoder.bias"] = t.state[f"{prefix}.predictions.bias"].clone()


def blip_pretrain_state(vocab: int, seed: int, vision_width: int, image_size: int, depth: int = 2) -> dict:
    """The state dict of salesforce/BLIP's ``BLIP_Pretrain`` (module docstring), tiny."""
    import torch

    t = _Tensors(seed)
    t.state["temp"] = torch.tensor(0.07)
    t.state["image_queue"] = torch.nn.functional.normalize(torch.randn(EMBED_DIM, QUEUE_SIZE, generator=t.gen), dim=0)
    t.state["text_queue"] = torch.nn.functional.normalize(torch.randn(EMBED_DIM, QUEUE_SIZE, generator=t.gen), dim=0)
    t.state["queue_ptr"] = torch.zeros(1, dtype=torch.long)
    _vit(t, "visual_encoder", vision_width, depth, image_size)
    _bert(t, "text_encoder", vocab, vision_width)
    t.linear("vision_proj", EMBED_DIM, vision_width)
    t.linear("text_proj", EMBED_DIM, TEXT_WIDTH)
    t.linear("itm_head", 2, TEXT_WIDTH)
    # momentum encoders start as copies (BLIP_Pretrain.copy_params)
    t.copy("visual_encoder", "visual_encoder_m")
    t.copy("vision_proj", "vision_proj_m")
    t.copy("text_encoder", "text_encoder_m")
    t.copy("text_proj", "text_proj_m")
    # the decoder: its own self-attention, everything else tied to the encoder
    t.copy("text_encoder", "text_decoder.bert")
    for i in range(TEXT_LAYERS):
        _bert_attention(t, f"text_decoder.bert.encoder.layer.{i}.attention", TEXT_WIDTH, TEXT_WIDTH)
    _lm_head(t, "text_decoder.cls", "text_decoder.bert.embeddings.word_embeddings.weight", vocab)
    return t.state


def lavis_blip2_qformer_state(vocab: int, seed: int, vision_width: int = 64, num_query_tokens: int = 8) -> dict:
    """The state dict LAVIS saves for ``Blip2Qformer`` with a frozen ViT (module docstring), tiny."""
    import torch

    t = _Tensors(seed)
    t.normal("query_tokens", 1, num_query_tokens, TEXT_WIDTH, std=0.02)
    t.state["temp"] = torch.tensor(0.07)
    t.layer_norm("ln_vision", vision_width)
    _bert(t, "Qformer.bert", vocab, vision_width, cross_every=2, query_branch=True)
    _lm_head(t, "Qformer.cls", "Qformer.bert.embeddings.word_embeddings.weight", vocab)
    t.linear("vision_proj", EMBED_DIM, TEXT_WIDTH)
    t.linear("text_proj", EMBED_DIM, TEXT_WIDTH)
    t.linear("itm_head", 2, TEXT_WIDTH)
    return t.state


def save_original(path, state: dict) -> Path:
    """``torch.save({"model": state}, path)`` as salesforce's and LAVIS's checkpoints are saved."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"model": state}, tmp)
    tmp.replace(path)
    return path
