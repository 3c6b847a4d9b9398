"""A tiny open_clip model with fixed random weights, exported as a local-dir model folder."""

import torch

from curate.clip import export_local_dir, load_model, write_arch_dir


def export_random_tiny_model(root, arch="tiny-vit-narrow"):
    """Seeded random weights, saved as a training checkpoint and exported, so every load gives the same model."""
    torch.manual_seed(0)
    model, _, _ = load_model(str(write_arch_dir(arch, root / "arch")))
    torch.save({"state_dict": model.state_dict()}, root / "epoch_1.pt")
    return export_local_dir(root / "epoch_1.pt", arch, root / "model")
