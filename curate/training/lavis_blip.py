"""BLIP pretraining with per-sample loss weights in salesforce-lavis (MoS Table 3, the real recipe).

Imports LAVIS: import this module only inside envs/lavis.yaml (the rule ``train_blip_lavis``
launches it with torchrun, ``python -m curate.training.lavis_blip --cfg-path run.yaml``). Nothing else in
the project imports it; the pure parts it reads (run config, reshard index, loss weighting) live in
`curate.training.lavis_config` and `curate.training.blip` and are tested in the project's env.

- ``weighted_blip_pretrain``: LAVIS's ``BlipPretrain`` whose forward is LAVIS's own (momentum
  encoders, queue, distillation ``alpha``, hard negatives from the ITC similarities, the shared
  encoder/decoder) with each sample's terms multiplied by its weight: the ITC distillation
  cross-entropies per sample and the ITM and LM terms through `curate.training.blip.weighted_mean`,
  `curate.training.blip.itm_loss` and `curate.training.blip.lm_loss` (uniform weights give LAVIS's losses; no
  hard negative is drawn from a zero-weight sample). Negatives from the queue are past batches'
  features, so a zero weight removes a sample's loss terms, not its features from later queues.
- ``weighted_reshard``: the reshard read as a map-style LAVIS dataset (``image``,
  ``text_input``, ``weight``) through `curate.training.lavis_config.reshard_index`.
- Building the model (`WeightedBlipPretrain.from_config`): LAVIS's ``BlipPretrain.from_config``
  downloads DeiT-B's ImageNet weights (torch.hub) and bert-base-uncased (the Hub) and fixes the
  ViT at B/16 or L/16. Here the same parts (LAVIS's ``VisionTransformerEncoder``, ``XBertEncoder``,
  ``XBertLMHeadDecoder``, BERT tokenizer + ``[DEC]`` + ``[ENC]``) are built from the fetched
  ``vision_init`` checkpoint and ``text_init`` folder, sized by them
  (`curate.training.lavis_config.vit_arch`, `curate.training.lavis_config.med_config`) and loaded as LAVIS
  loads them (position embeddings interpolated to the image size; ``from_pretrained`` with the
  med config): DeiT-B and bert-base-uncased give LAVIS's model, tiny files in their layouts a
  tiny one.
- `main`: LAVIS's ``train.py`` (config, distributed init, seeds, task, datasets, model, runner).
  LAVIS assumes CUDA (its distributed init is nccl with ``cuda.set_device``, its loaders copy
  batches on a CUDA stream, its runner wraps the model in DDP only when moving it to another
  device); with ``dist_backend: gloo`` on CPU the process group is gloo, batches stay in host
  memory and the model is wrapped in a CPU DDP, LAVIS's runner doing the rest. Rank 0 writes the
  built architecture (``arch.json``) and the tokenizer beside the checkpoints, for the conversion
  to transformers' layout (`curate.training.lavis_convert`).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from lavis.common.registry import registry
from lavis.datasets.builders.base_dataset_builder import BaseDatasetBuilder
from lavis.datasets.datasets.base_dataset import BaseDataset
from lavis.models.blip_models.blip_outputs import BlipIntermediateOutput, BlipOutput, BlipSimilarity
from lavis.models.blip_models.blip_pretrain import BlipPretrain
from lavis.models.med import XBertEncoder, XBertLMHeadDecoder
from lavis.models.vit import VisionTransformerEncoder, interpolate_pos_embed
from PIL import Image

from curate.training.blip import LABEL_SMOOTHING, itm_loss, lm_loss, weighted_mean
from curate.training.lavis_config import (
    ARCH_FILE,
    CHECKPOINT_DIR,
    DATASET_NAME,
    MODEL_ARCH,
    TOKENIZER_DIR,
    dataset_defaults,
    med_config,
    read_image_bytes,
    reshard_index,
    vit_arch,
)


class WeightedReshardDataset(BaseDataset):
    def __init__(self, vis_processor, text_processor, location):
        super().__init__(vis_processor=vis_processor, text_processor=text_processor)
        self.annotation = reshard_index(location)

    def __getitem__(self, index):
        entry = self.annotation[index]
        image = Image.open(io.BytesIO(read_image_bytes(entry))).convert("RGB")
        return {
            "image": self.vis_processor(image),
            "text_input": self.text_processor(entry["caption"]),
            "weight": torch.tensor(entry["weight"], dtype=torch.float32),
        }


@registry.register_builder(DATASET_NAME)
class WeightedReshardBuilder(BaseDatasetBuilder):
    train_dataset_cls = WeightedReshardDataset
    DATASET_CONFIG_DICT = {"default": None}  # set by `main` to a file it writes

    def _download_ann(self):
        pass

    def _download_vis(self):
        pass

    def build(self):
        self.build_processors()
        return {
            "train": self.train_dataset_cls(
                vis_processor=self.vis_processors["train"],
                text_processor=self.text_processors["train"],
                location=self.config.build_info.storage,
            )
        }


@registry.register_model(MODEL_ARCH)
class WeightedBlipPretrain(BlipPretrain):
    """LAVIS's BLIP pretraining with per-sample loss weights (``samples["weight"]``, 1 if absent)."""

    PRETRAINED_MODEL_CONFIG_DICT = BlipPretrain.PRETRAINED_MODEL_CONFIG_DICT

    def __init__(self, *args, tokenizer_dir, **kwargs):
        # read by init_tokenizer, which BlipPretrain.__init__ calls
        object.__setattr__(self, "_tokenizer_dir", str(tokenizer_dir))
        super().__init__(*args, **kwargs)

    def init_tokenizer(self):
        """LAVIS's BLIP tokenizer (BERT's + ``[DEC]`` as bos + ``[ENC]``) from the text init's folder."""
        from transformers import BertTokenizer

        tokenizer = BertTokenizer.from_pretrained(self._tokenizer_dir)
        tokenizer.add_special_tokens({"bos_token": "[DEC]"})
        tokenizer.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
        tokenizer.enc_token_id = tokenizer.additional_special_tokens_ids[0]
        return tokenizer

    @classmethod
    def from_config(cls, cfg=None):
        vision_init, text_init = cfg.get("vision_init"), cfg.get("text_init")
        if not vision_init or not text_init:
            raise ValueError(
                "model.vision_init and model.text_init (fetched files) are required: nothing is downloaded"
            )
        image_encoder = build_vit(vision_init, cfg)
        med = _med_config(text_init, image_encoder.vision_width)
        text_encoder = XBertEncoder.from_pretrained(text_init, config=med, add_pooling_layer=False)
        text_decoder = XBertLMHeadDecoder.from_pretrained(text_init, config=med)
        model = cls(
            image_encoder=image_encoder,
            text_encoder=text_encoder,
            text_decoder=text_decoder,
            embed_dim=cfg.get("embed_dim", 256),
            queue_size=cfg.get("queue_size", 57600),
            momentum=cfg.get("momentum", 0.995),
            alpha=cfg.get("alpha", 0.4),
            tie_enc_dec_weights=True,
            max_txt_len=cfg.get("max_txt_len", 30),
            tokenizer_dir=text_init,
        )
        model.reset_queue_ptr()  # as LAVIS: the queue fills from 0
        model.arch = {
            "vision": {**image_encoder.arch, "image_size": int(cfg.get("image_size"))},
            "text": med.to_dict(),
            "embed_dim": int(cfg.get("embed_dim", 256)),
            "max_txt_len": int(cfg.get("max_txt_len", 30)),
        }
        return model

    def forward(self, samples):
        image, caption = samples["image"], samples["text_input"]
        bs = image.size(0)
        weights = samples.get("weight")
        weights = torch.ones(bs, device=image.device) if weights is None else weights.to(image.device).float()
        alpha = self.alpha * self._rampup_factor(
            epoch=samples["epoch"], iters=samples["iters"], num_iters_per_epoch=samples["num_iters_per_epoch"]
        )
        with torch.no_grad():
            self.temp.clamp_(0.001, 0.5)
        image_embeds = self.visual_encoder.forward_features(image)
        image_atts = torch.ones(image_embeds.size()[:-1], dtype=torch.long).to(image.device)
        image_feat = F.normalize(self.vision_proj(image_embeds[:, 0, :]), dim=-1)
        text = self.tokenizer(
            caption, padding="max_length", truncation=True, max_length=self.max_txt_len, return_tensors="pt"
        ).to(image.device)
        text_output = self.text_encoder.forward_text(text)
        text_embeds = text_output.last_hidden_state
        text_feat = F.normalize(self.text_proj(text_embeds[:, 0, :]), dim=-1)

        with torch.no_grad():
            self._momentum_update()
            image_embeds_m = self.visual_encoder_m(image)
            image_feat_m = F.normalize(self.vision_proj_m(image_embeds_m[:, 0, :]), dim=-1)
            image_feat_all = torch.cat([image_feat_m.t(), self.image_queue.clone().detach()], dim=1)
            text_output_m = self.text_encoder_m.forward_text(text)
            text_embeds_m = text_output_m.last_hidden_state
            text_feat_m = F.normalize(self.text_proj_m(text_embeds_m[:, 0, :]), dim=-1)
            text_feat_all = torch.cat([text_feat_m.t(), self.text_queue.clone().detach()], dim=1)
            sim_i2t_m = image_feat_m @ text_feat_all / self.temp
            sim_t2i_m = text_feat_m @ image_feat_all / self.temp
            sim_targets = torch.zeros(sim_i2t_m.size()).to(image.device)
            sim_targets.fill_diagonal_(1)
            sim_i2t_targets = alpha * F.softmax(sim_i2t_m, dim=1) + (1 - alpha) * sim_targets
            sim_t2i_targets = alpha * F.softmax(sim_t2i_m, dim=1) + (1 - alpha) * sim_targets

        sim_i2t = image_feat @ text_feat_all / self.temp
        sim_t2i = text_feat @ image_feat_all / self.temp
        loss_i2t = weighted_mean(-torch.sum(F.log_softmax(sim_i2t, dim=1) * sim_i2t_targets, dim=1), weights)
        loss_t2i = weighted_mean(-torch.sum(F.log_softmax(sim_t2i, dim=1) * sim_t2i_targets, dim=1), weights)
        if loss_i2t is None:  # every weight 0: no gradient from this batch
            zero = sum(p.sum() for p in self.parameters() if p.requires_grad) * 0.0
            return BlipOutput(loss=zero, loss_itc=zero, loss_itm=zero, loss_lm=zero)
        loss_itc = (loss_i2t + loss_t2i) / 2
        self._dequeue_and_enqueue(image_feat_m, text_feat_m)

        encoder_input_ids = text.input_ids.clone()
        encoder_input_ids[:, 0] = self.tokenizer.enc_token_id
        output_pos = self.text_encoder(
            encoder_input_ids,
            attention_mask=text.attention_mask,
            encoder_hidden_states=image_embeds,
            encoder_attention_mask=image_atts,
            return_dict=True,
        )
        keep = weights > 0
        with torch.no_grad():
            weights_t2i = F.softmax(sim_t2i[:, :bs], dim=1) + 1e-4
            weights_t2i.fill_diagonal_(0)
            weights_t2i[:, ~keep] = 0
            weights_i2t = F.softmax(sim_i2t[:, :bs], dim=1) + 1e-4
            weights_i2t.fill_diagonal_(0)
            weights_i2t[:, ~keep] = 0
        has_negative = (weights_t2i.sum(1) > 0) & (weights_i2t.sum(1) > 0)
        weights_t2i[~has_negative] = 1.0  # rows without a negative: any draw, its terms weigh 0
        weights_i2t[~has_negative] = 1.0
        neg_images = torch.multinomial(weights_t2i, 1).flatten()
        neg_texts = torch.multinomial(weights_i2t, 1).flatten()
        image_embeds_neg = image_embeds[neg_images]
        text_ids_neg, text_atts_neg = encoder_input_ids[neg_texts], text.attention_mask[neg_texts]
        output_neg = self.text_encoder(
            torch.cat([encoder_input_ids, text_ids_neg], dim=0),
            attention_mask=torch.cat([text.attention_mask, text_atts_neg], dim=0),
            encoder_hidden_states=torch.cat([image_embeds_neg, image_embeds], dim=0),
            encoder_attention_mask=torch.cat([image_atts, image_atts], dim=0),
            return_dict=True,
        )
        itm_logits = self.itm_head(
            torch.cat([output_pos.last_hidden_state[:, 0, :], output_neg.last_hidden_state[:, 0, :]], dim=0)
        )
        loss_itm = itm_loss(itm_logits[:bs], itm_logits[bs : 2 * bs], itm_logits[2 * bs :], weights, has_negative)

        decoder_input_ids = text.input_ids.clone()
        decoder_input_ids[:, 0] = self.tokenizer.bos_token_id
        decoder_targets = decoder_input_ids.masked_fill(decoder_input_ids == self.tokenizer.pad_token_id, -100)
        decoder_output = self.text_decoder(
            decoder_input_ids,
            attention_mask=text.attention_mask,
            encoder_hidden_states=image_embeds,
            encoder_attention_mask=image_atts,
            labels=decoder_targets,
            return_dict=True,
        )
        loss_lm = lm_loss(decoder_output.logits, decoder_targets, weights, label_smoothing=LABEL_SMOOTHING)
        return BlipOutput(
            loss=loss_itc + loss_itm + loss_lm,
            loss_itc=loss_itc,
            loss_itm=loss_itm,
            loss_lm=loss_lm,
            sims=BlipSimilarity(
                sim_i2t=sim_i2t,
                sim_t2i=sim_t2i,
                sim_i2t_m=sim_i2t_m,
                sim_t2i_m=sim_t2i_m,
                sim_i2t_targets=sim_i2t_targets,
                sim_t2i_targets=sim_t2i_targets,
            ),
            intermediate_output=BlipIntermediateOutput(
                image_embeds=image_embeds,
                text_embeds=text_embeds,
                image_embeds_m=image_embeds_m,
                text_embeds_m=text_embeds_m,
                encoder_output=output_pos,
                encoder_output_neg=output_neg,
                itm_logits=itm_logits,
                decoder_output=decoder_output,
                decoder_labels=decoder_targets,
            ),
        )


def build_vit(checkpoint_path, cfg) -> VisionTransformerEncoder:
    """LAVIS's ViT sized by a DeiT-layout checkpoint (``{"model": state_dict}``) and loaded from it
    as LAVIS loads DeiT-B (position embeddings interpolated to ``image_size``; the classifier head
    unused). Raises when a ViT weight is missing from the file."""
    checkpoint = torch.load(str(checkpoint_path), map_location="cpu")
    state = checkpoint.get("model", checkpoint)
    arch = vit_arch({k: tuple(v.shape) for k, v in state.items()})
    encoder = VisionTransformerEncoder(
        img_size=int(cfg.get("image_size")),
        patch_size=arch["patch_size"],
        embed_dim=arch["width"],
        depth=arch["depth"],
        num_heads=arch["heads"],
        mlp_ratio=arch["mlp_ratio"],
        use_grad_checkpointing=cfg.get("vit_grad_ckpt", False),
        ckpt_layer=cfg.get("vit_ckpt_layer", 0),
        drop_path_rate=cfg.get("vit_drop_path_rate", 0),
    )
    state = dict(state)
    state["pos_embed"] = interpolate_pos_embed(state["pos_embed"], encoder)
    result = encoder.load_state_dict(state, strict=False)
    if result.missing_keys:
        raise ValueError(f"{checkpoint_path}: no weights for {result.missing_keys[:5]} of the ViT")
    encoder.vision_width = arch["width"]
    encoder.arch = arch
    return encoder


def _med_config(text_init, vision_width: int):
    from lavis.common.utils import get_abs_path
    from transformers import BertConfig

    lavis_med = json.loads(Path(get_abs_path("configs/models/bert_config.json")).read_text())
    text = json.loads((Path(text_init) / "config.json").read_text())
    return BertConfig.from_dict(med_config(lavis_med, text, vision_width))


class _HostLoader:
    """LAVIS's PrefetchLoader without its CUDA stream (CPU runs): batches stay in host memory."""

    def __init__(self, loader):
        self.loader = loader

    def __iter__(self):
        return iter(self.loader)

    def __len__(self):
        return len(self.loader)

    def __getattr__(self, name):  # the sampler (set_epoch) and the rest, as PrefetchLoader
        return getattr(self.loader, name)


def _synchronize_on_host(meter) -> None:
    """LAVIS's ``SmoothedValue.synchronize_between_processes`` (the sum of count and total over the
    processes) with the tensor in host memory: LAVIS puts it on CUDA, which gloo on CPU lacks."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return
    t = torch.tensor([meter.count, meter.total], dtype=torch.float64)
    torch.distributed.barrier()
    torch.distributed.all_reduce(t)
    meter.count, meter.total = int(t[0]), float(t[1])


def use_host_memory() -> None:
    """What LAVIS does on CUDA, on CPU: its metric logger's reductions in host memory."""
    from lavis.common.logger import SmoothedValue

    SmoothedValue.synchronize_between_processes = _synchronize_on_host


def init_distributed(run_cfg) -> None:
    """LAVIS's distributed init (nccl, one GPU a process) for ``dist_backend: nccl``; for gloo the
    same from torchrun's environment without CUDA."""
    from lavis.common.dist_utils import init_distributed_mode, setup_for_distributed

    if run_cfg.get("dist_backend", "nccl") == "nccl":
        init_distributed_mode(run_cfg)
        return
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        run_cfg.distributed = False
        return
    run_cfg.rank, run_cfg.world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    run_cfg.gpu = None
    run_cfg.distributed = True
    torch.distributed.init_process_group(
        backend=run_cfg.dist_backend, init_method=run_cfg.dist_url, world_size=run_cfg.world_size, rank=run_cfg.rank
    )
    torch.distributed.barrier()
    setup_for_distributed(run_cfg.rank == 0)


def runner_class():
    """LAVIS's RunnerBase; on CPU with the model wrapped in a CPU DDP (LAVIS wraps it only when it
    moves it to another device, i.e. never on CPU) and without the CUDA prefetch."""
    import lavis.runners.runner_base as runner_base
    from torch.nn.parallel import DistributedDataParallel

    class Runner(runner_base.RunnerBase):
        @property
        def model(self):
            if self.device.type == "cuda":
                return super().model
            if self._wrapped_model is None:
                self._model = self._model.to(self.device)
                self._wrapped_model = DistributedDataParallel(self._model) if self.use_distributed else self._model
            return self._wrapped_model

        def create_loaders(self, *args, **kwargs):
            if self.device.type == "cuda":
                return super().create_loaders(*args, **kwargs)
            prefetch, runner_base.PrefetchLoader = runner_base.PrefetchLoader, _HostLoader
            try:
                return super().create_loaders(*args, **kwargs)
            finally:
                runner_base.PrefetchLoader = prefetch

    return Runner


def write_run_files(model, out_dir) -> None:
    """The built architecture and the tokenizer, beside LAVIS's checkpoints (rank 0)."""
    out_dir = Path(out_dir)
    arch = dict(model.arch)
    tokenizer = model.tokenizer
    arch["tokens"] = {
        "bos_token_id": int(tokenizer.bos_token_id),
        "enc_token_id": int(tokenizer.enc_token_id),
        "sep_token_id": int(tokenizer.sep_token_id),
        "pad_token_id": int(tokenizer.pad_token_id),
        "vocab_size": len(tokenizer),
    }
    (out_dir / ARCH_FILE).write_text(json.dumps(arch, indent=2) + "\n")
    tokenizer.save_pretrained(str(out_dir / TOKENIZER_DIR))


def main(argv=None) -> None:
    """LAVIS's train.py on a run config written by `curate.training.lavis_config.run_config`."""
    import lavis.common.optims  # noqa: F401  registers LAVIS's lr schedules, as its train.py imports them
    import lavis.tasks as tasks
    from lavis.common.config import Config
    from lavis.common.dist_utils import get_rank, is_main_process
    from lavis.common.logger import setup_logger

    parser = argparse.ArgumentParser(description="BLIP pretraining with per-sample loss weights (LAVIS)")
    parser.add_argument("--cfg-path", required=True)
    parser.add_argument("--options", nargs="+", default=None)
    args = parser.parse_args(argv)
    defaults = Path(args.cfg_path).with_name("weighted_reshard_defaults.yaml")
    defaults.write_text(yaml.safe_dump(dataset_defaults()))
    WeightedReshardBuilder.DATASET_CONFIG_DICT = {"default": str(defaults.resolve())}
    cfg = Config(args)
    if cfg.run_cfg.device == "cpu":
        use_host_memory()
    init_distributed(cfg.run_cfg)
    seed = cfg.run_cfg.seed + get_rank()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    setup_logger()
    cfg.pretty_print()
    task = tasks.setup_task(cfg)
    datasets = task.build_datasets(cfg)
    model = task.build_model(cfg)
    if is_main_process():
        write_run_files(model, cfg.run_cfg.output_dir)
    runner_class()(cfg=cfg, job_id=CHECKPOINT_DIR, task=task, model=model, datasets=datasets).train()


@torch.no_grad()
def reference_outputs(cfg_path, inputs_path, out_path) -> None:
    """LAVIS's own ITC features, ITM logits and decoder logits of the run configured in
    `cfg_path` on fixed inputs (``pixel_values``, ``input_ids``, ``attention_mask`` of an .npz),
    saved to `out_path` (.npz): what a conversion to transformers must reproduce. The model is
    built as training builds it and loaded from the run's last checkpoint; a run without one gets
    its initial state saved as ``checkpoint_0.pth`` (with ``arch.json`` and the tokenizer), as the
    runner saves it. ``python -m curate.training.lavis_blip reference CFG INPUTS OUT``."""
    from types import SimpleNamespace

    from omegaconf import OmegaConf

    from curate.training.lavis_config import last_checkpoint

    cfg = OmegaConf.load(str(cfg_path))
    out_dir = Path(cfg.run.output_dir)
    torch.manual_seed(int(cfg.run.seed))
    model = WeightedBlipPretrain.from_config(cfg.model).eval()
    try:
        checkpoint = last_checkpoint(out_dir)
    except FileNotFoundError:
        write_run_files(model, out_dir)
        trainable = {k for k, p in model.named_parameters() if p.requires_grad}
        state = {
            k: v for k, v in model.state_dict().items() if k in trainable or k not in dict(model.named_parameters())
        }
        (out_dir / CHECKPOINT_DIR).mkdir(parents=True, exist_ok=True)
        torch.save({"model": state, "epoch": 0}, out_dir / CHECKPOINT_DIR / "checkpoint_0.pth")
    else:
        result = model.load_state_dict(torch.load(str(checkpoint), map_location="cpu")["model"], strict=False)
        stray = [k for k in result.missing_keys if "_m." not in k]
        if stray or result.unexpected_keys:
            raise ValueError(f"{checkpoint}: missing {stray[:5]}, unexpected {result.unexpected_keys[:5]}")
    inputs = np.load(str(inputs_path))
    pixels = torch.from_numpy(inputs["pixel_values"]).float()
    ids, mask = torch.from_numpy(inputs["input_ids"]).long(), torch.from_numpy(inputs["attention_mask"]).long()
    image_embeds = model.visual_encoder.forward_features(pixels)
    image_atts = torch.ones(image_embeds.shape[:-1], dtype=torch.long)
    image_feat = F.normalize(model.vision_proj(image_embeds[:, 0, :]), dim=-1)
    text = model.text_encoder.forward_text(SimpleNamespace(input_ids=ids, attention_mask=mask))
    text_feat = F.normalize(model.text_proj(text.last_hidden_state[:, 0, :]), dim=-1)
    enc_ids = ids.clone()
    enc_ids[:, 0] = model.tokenizer.enc_token_id
    fused = model.text_encoder(
        enc_ids,
        attention_mask=mask,
        encoder_hidden_states=image_embeds,
        encoder_attention_mask=image_atts,
        return_dict=True,
    )
    dec_ids = ids.clone()
    dec_ids[:, 0] = model.tokenizer.bos_token_id
    decoded = model.text_decoder(
        dec_ids,
        attention_mask=mask,
        encoder_hidden_states=image_embeds,
        encoder_attention_mask=image_atts,
        return_dict=True,
    )
    np.savez(
        str(out_path),
        image_feat=image_feat.numpy(),
        text_feat=text_feat.numpy(),
        itm_logits=model.itm_head(fused.last_hidden_state[:, 0, :]).numpy(),
        decoder_logits=decoded.logits.numpy(),
        temp=model.temp.numpy(),
    )


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["reference"]:
        reference_outputs(*sys.argv[2:5])
    else:
        main()
