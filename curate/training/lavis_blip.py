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
- `main`: LAVIS's ``train.py`` (config, distributed init, seeds, task, datasets, model, runner).
"""

from __future__ import annotations

import argparse
import io
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
from PIL import Image

from curate.training.blip import LABEL_SMOOTHING, itm_loss, lm_loss, weighted_mean
from curate.training.lavis_config import DATASET_NAME, MODEL_ARCH, dataset_defaults, read_image_bytes, reshard_index


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


def main(argv=None) -> None:
    """LAVIS's train.py on a run config written by `curate.training.lavis_config.run_config`."""
    import lavis.tasks as tasks
    from lavis.common.config import Config
    from lavis.common.dist_utils import get_rank, init_distributed_mode
    from lavis.common.logger import setup_logger
    from lavis.runners.runner_base import RunnerBase

    parser = argparse.ArgumentParser(description="BLIP pretraining with per-sample loss weights (LAVIS)")
    parser.add_argument("--cfg-path", required=True)
    parser.add_argument("--options", nargs="+", default=None)
    args = parser.parse_args(argv)
    defaults = Path(args.cfg_path).with_name("weighted_reshard_defaults.yaml")
    defaults.write_text(yaml.safe_dump(dataset_defaults()))
    WeightedReshardBuilder.DATASET_CONFIG_DICT = {"default": str(defaults.resolve())}
    cfg = Config(args)
    init_distributed_mode(cfg.run_cfg)
    seed = cfg.run_cfg.seed + get_rank()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    setup_logger()
    cfg.pretty_print()
    task = tasks.setup_task(cfg)
    datasets = task.build_datasets(cfg)
    model = task.build_model(cfg)
    RunnerBase(cfg=cfg, job_id="train", task=task, model=model, datasets=datasets).train()


if __name__ == "__main__":
    main()
