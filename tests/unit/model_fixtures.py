"""A tiny open_clip model with fixed random weights, exported as a local-dir model folder."""

import torch

from curate.scoring.clip import export_local_dir, load_model, write_arch_dir


def export_random_tiny_model(root, arch="tiny-vit-narrow"):
    """Seeded random weights, saved as a training checkpoint and exported, so every load gives the same model."""
    torch.manual_seed(0)
    model, _, _ = load_model(str(write_arch_dir(arch, root / "arch")))
    torch.save({"state_dict": model.state_dict()}, root / "epoch_1.pt")
    return export_local_dir(root / "epoch_1.pt", arch, root / "model")


ITM_TEXTS = [
    "a red circle on a blue field",
    "two green squares",
    "a photo of a yellow triangle",
    "stock photo of a cat",
    "text written on a wall",
    "an empty grey image",
]


def _tiny_itm_tokenizer():
    from curate.scoring.captioning import train_wordpiece_tokenizer

    return train_wordpiece_tokenizer(ITM_TEXTS, vocab_size=120)


def build_tiny_blip_itm(out_dir, seed=0, image_size=32, vision_layer_norm_eps=1e-5, hidden=32, heads=2):
    """A tiny BlipForImageTextRetrieval with seeded random weights and its BlipProcessor, saved
    with save_pretrained (the Hub's Salesforce/blip-itm-* layout). The ITM head is scaled up so
    that the match probabilities spread over (0, 1) instead of sitting at 0.5. Original BLIP's
    ViT has LayerNorm eps 1e-6 (`vision_layer_norm_eps`; transformers' default is 1e-5)."""
    from transformers import BlipForImageTextRetrieval, BlipImageProcessor, BlipProcessor

    from curate.scoring.captioning import tiny_blip_config

    torch.manual_seed(seed)
    tokenizer = _tiny_itm_tokenizer()
    config = tiny_blip_config(
        tokenizer, image_size=image_size, patch_size=8, hidden=hidden, heads=heads, max_positions=40
    )
    config.image_text_hidden_size = 16
    config.vision_config.layer_norm_eps = vision_layer_norm_eps
    model = BlipForImageTextRetrieval(config).eval()
    with torch.no_grad():
        model.itm_head.weight.mul_(5.0)
    processor = BlipProcessor(BlipImageProcessor(size={"height": image_size, "width": image_size}), tokenizer)
    model.save_pretrained(str(out_dir))
    processor.save_pretrained(str(out_dir))
    return out_dir


def build_tiny_blip2_itm(out_dir, seed=0, image_size=32, num_query_tokens=4):
    """A tiny Blip2ForImageTextRetrieval (Q-Former with text input, cross-attention in every
    layer) with seeded random weights and its Blip2Processor, saved with save_pretrained."""
    from transformers import Blip2Config, Blip2ForImageTextRetrieval, Blip2Processor, BlipImageProcessor

    torch.manual_seed(seed)
    tokenizer = _tiny_itm_tokenizer()
    config = Blip2Config(
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=image_size,
            patch_size=8,
        ),
        qformer_config=dict(
            vocab_size=len(tokenizer),
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            encoder_hidden_size=32,
            cross_attention_frequency=1,
            max_position_embeddings=40,
            pad_token_id=tokenizer.pad_token_id,
            use_qformer_text_input=True,
        ),
        text_config=dict(
            model_type="opt",
            vocab_size=50,
            hidden_size=16,
            num_hidden_layers=1,
            ffn_dim=32,
            num_attention_heads=2,
            word_embed_proj_dim=16,
        ),
        num_query_tokens=num_query_tokens,
        image_text_hidden_size=16,
    )
    model = Blip2ForImageTextRetrieval(config).eval()
    with torch.no_grad():
        model.itm_head.weight.mul_(5.0)
        model.query_tokens.normal_()  # transformers starts them at zero: every query would be the same
    processor = Blip2Processor(BlipImageProcessor(size={"height": image_size, "width": image_size}), tokenizer)
    model.save_pretrained(str(out_dir))
    processor.save_pretrained(str(out_dir))
    return out_dir


def transformers_key_to_blip(key: str) -> str:
    """The inverse of blip_key_to_transformers on BlipForImageTextRetrieval's keys (tests: an original
    checkpoint written from a transformers model)."""
    replacements = [
        ("vision_model.embeddings.patch_embedding", "visual_encoder.patch_embed.proj"),
        ("vision_model.embeddings.position_embedding", "visual_encoder.pos_embed"),
        ("vision_model.embeddings.class_embedding", "visual_encoder.cls_token"),
        ("vision_model.post_layernorm", "visual_encoder.norm"),
        ("vision_model.encoder.layers", "visual_encoder.blocks"),
        ("self_attn.projection", "attn.proj"),
        ("self_attn.qkv", "attn.qkv"),
        ("layer_norm1", "norm1"),
        ("layer_norm2", "norm2"),
    ]
    for new, old in replacements:
        key = key.replace(new, old)
    return key
