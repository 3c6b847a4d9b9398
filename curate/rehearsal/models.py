"""Every ``models:`` entry of the catalogue (config/models.yaml) as its source delivers it, with
tiny weights, in the local internet's layout (`curate.rehearsal`):

- plain URLs at ``R/web/<host>/<path>``: OpenAI's CLIP ``.pt`` files (TorchScript, `model_clip`),
  salesforce/BLIP's original ``.pth`` checkpoints and LAVIS's BLIP-2 Q-Former (`model_blip`),
  fastText's ``lid.176.bin``, nltk_data's ``wordnet.zip`` and DataComp's ImageNet-21k WordNet id
  list (`model_text`);
- Hub model repos at ``R/hub/models/<org>/<name>/``: open_clip's layout for the tags open_clip
  fetches from the Hub (EVA-CLIP), transformers' ``save_pretrained`` layouts for BLIP / BLIP-2 ITM,
  GIT, CLIP ViT-L/14-336, DINOv2-L/14 and Vicuna, sentence-transformers' for all-MiniLM-L6-v2 (`model_blip`,
  `model_hf`), each with a ``README.md``.

`build` finds each entry's source the way `curate.scoring.pretrained.fetch_model` does (open_clip's
pretrained registry for ``library: open_clip``; ``id`` and ``url`` otherwise), builds each source
once (two entries may share one, e.g. BLIP's ``model_base.pth``) with a seed derived from the build
seed and the source, and writes ``R/models.json``: per entry its URL or repo, the sha256 that
``fetch_model`` checks (the downloaded file's; a Hub snapshot's ``weights_file``'s; the Hub file
open_clip picks), the size, and where the local internet serves it (for WordNet also the shape
synsets' ids, ``shape_wnids``). An entry whose source has no
builder here is an error naming it: a new catalogue entry needs its tiny stand-in before the
rehearsal can run.

What the rehearsal scale has to say beside the catalogue's entries: the ``sha256`` of every entry
that pins one (OpenAI's six, lid.176, the ImageNet-21k ids) is the tiny file's, from ``R/models.json`` (or null). Architectures
need no override: `fetch_model` takes an OpenAI checkpoint's architecture from its tensors and a
Hub repo's from its ``open_clip_config.json``, as open_clip's loaders do.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from curate.rehearsal.model_common import hub_path, model_seed, web_path, write_json, write_model_card

log = logging.getLogger(__name__)

CATALOGUE = Path(__file__).resolve().parents[2] / "config" / "models.yaml"
MANIFEST = "models.json"

#: BLIP originals at storage.googleapis.com: vision width (ViT-B 768 -> 64, ViT-L 1024 -> 128)
BLIP_ORIGINALS = {
    "BLIP/models/model_base.pth": 64,
    "BLIP/models/model_large.pth": 128,
    "BLIP/models/model_base_14M.pth": 64,
}
BLIP2_QFORMER = "LAVIS/models/BLIP2/blip2_pretrained_vitL.pth"
LID_URL = "https://dl.fbaipublicfiles.com/fasttext/supervised-models/lid.176.bin"
WORDNET_URL = "https://raw.githubusercontent.com/nltk/nltk_data/gh-pages/packages/corpora/wordnet.zip"
IMAGENET21K_WNIDS_URL = (
    "https://github.com/sagadre/datacomp_baseline_assets/releases/download/v0.1.0-alpha/imagenet21k_wordnet_ids.txt"
)
#: Hub repos built with transformers: (builder, its arguments, the model card's words)
BLIP_ITM_SNAPSHOTS = {
    "Salesforce/blip-itm-base-coco": (64, 48),  # ViT-B/16 at 384 px -> 64 wide, 3x3 patches
    "Salesforce/blip-itm-large-coco": (128, 48),
}
#: LAVIS BLIP pretraining's initialisations (`curate.training.lavis_inits` builds them tiny).
DEIT_URL = "https://dl.fbaipublicfiles.com/deit/deit_base_patch16_224-b5f2ef4d.pth"
#: HYPE's release on Google Drive (config/models.yaml hype-*): which of its two files each id is.
DRIVE_URL = "https://drive.usercontent.google.com/download?id="
HYPE_DRIVE_IDS = {"1VF2g6m0tlHgzYzcMEYncchHXjhw-h5qo": "ckpt", "1pdiFdZzcqoQ1nRtlHIpP0nu-BFRbfuYe": "reference"}
BERT_REPO = "google-bert/bert-base-uncased"
BLIP_CAPTION_SNAPSHOTS = {"Salesforce/blip-image-captioning-base": (64, 48)}
BLIP2_ITM_SNAPSHOTS = {
    "Salesforce/blip2-itm-vit-g": 28,  # ViT-g/14 at 224 px -> 2x2 patches
    "Salesforce/blip2-itm-vit-g-coco": 42,  # at 364 px -> 3x3
}


#: The ``models`` libraries that are fetched (a ``trained`` model is a run of the workflow, a
#: ``random`` one is written by `init_model`: neither comes from the internet)
FETCHED_LIBRARIES = ("open_clip", "huggingface", "url")


def catalogue(path=CATALOGUE) -> dict:
    """The fetched ``models`` of the catalogue (`FETCHED_LIBRARIES`)."""
    import yaml

    with open(path, encoding="utf-8") as f:
        models = yaml.safe_load(f)["models"]
    return {name: entry for name, entry in models.items() if entry.get("library") in FETCHED_LIBRARIES}


def source_of(name: str, entry: dict) -> tuple[str, str]:
    """``("web", url)`` or ``("hub", repo_id)``: where `fetch_model` gets the entry's bytes."""
    library = entry.get("library")
    if library == "open_clip":
        import open_clip

        tag = open_clip.get_pretrained_cfg(entry["arch"], str(entry["pretrained"]))
        if not tag:
            raise ValueError(f"models.{name}: open_clip has no tag {entry['pretrained']!r} for {entry['arch']!r}")
        if "openaipublic" in (tag.get("url") or ""):
            return "web", tag["url"]
        if tag.get("hf_hub"):
            hf_hub = tag["hf_hub"]
            return "hub", hf_hub.rstrip("/") if hf_hub.endswith("/") else hf_hub.rsplit("/", 1)[0]
        return "web", tag["url"]
    if library == "huggingface":
        return "hub", str(entry["id"])
    if library == "url":
        return "web", str(entry["url"])
    raise ValueError(f"models.{name}: unknown library {library!r}")


class _Builder:
    """Builds each source once; remembers the shared BLIP tokenizer."""

    def __init__(self, root: Path, seed: int):
        self.root, self.seed = root, int(seed)
        self._blip_tokenizer = None
        self.built: dict[tuple[str, str], Path] = {}
        self.openai_jobs: list[tuple] = []

    def finish(self) -> None:
        """Build what is built in batches: OpenAI's TorchScript archives, in one child process."""
        from curate.rehearsal.model_clip import build_openai_clips

        build_openai_clips(self.openai_jobs)
        self.openai_jobs = []

    def blip_tokenizer(self):
        from curate.rehearsal.model_blip import blip_tokenizer

        if self._blip_tokenizer is None:
            self._blip_tokenizer = blip_tokenizer(model_seed("blip-tokenizer", self.seed))
        return self._blip_tokenizer

    def build(self, name: str, entry: dict, kind: str, where: str) -> Path:
        key = (kind, where)
        if key not in self.built:
            seed = model_seed(where, self.seed)
            if kind == "web":
                path = web_path(self.root, where)
                self._web(name, entry, where, path, seed)
            else:
                path = hub_path(self.root, where)
                self._hub(name, entry, where, path, seed)
            log.info("built %s %s", kind, where)
            self.built[key] = path
        return self.built[key]

    def _web(self, name, entry, url, path: Path, seed: int) -> None:
        from curate.rehearsal import model_blip, model_text

        gcs = "https://storage.googleapis.com/sfr-vision-language-research/"
        if "openaipublic" in url and entry.get("library") == "open_clip":
            self.openai_jobs.append((path, entry["arch"], seed))  # scripted together (`finish`)
        elif url.startswith(gcs) and url[len(gcs) :] in BLIP_ORIGINALS:
            vocab = len(self.blip_tokenizer())
            state = model_blip.blip_pretrain_state(vocab, seed, BLIP_ORIGINALS[url[len(gcs) :]], image_size=32)
            model_blip.save_original(path, state)
        elif url == gcs + BLIP2_QFORMER:
            model_blip.save_original(path, model_blip.lavis_blip2_qformer_state(len(self.blip_tokenizer()), seed))
        elif url == LID_URL:
            model_text.build_lid_model(path, seed)
        elif url == WORDNET_URL:
            model_text.build_wordnet_zip(path)
        elif url == IMAGENET21K_WNIDS_URL:
            model_text.build_wnid_list(path)
        elif url.startswith(DRIVE_URL) and url[len(DRIVE_URL) :].split("&", 1)[0] in HYPE_DRIVE_IDS:
            from curate.rehearsal.model_clip import build_hype_release_file

            build_hype_release_file(path, HYPE_DRIVE_IDS[url[len(DRIVE_URL) :].split("&", 1)[0]], seed)
        elif url == DEIT_URL:
            from curate.training.lavis_inits import tiny_deit_checkpoint

            tiny_deit_checkpoint(path, image_size=32, seed=seed)  # the rehearsal's mos-blip image_size
        else:
            raise ValueError(f"models.{name}: the rehearsal has no tiny stand-in for {url}")

    def _hub(self, name, entry, repo: str, folder: Path, seed: int) -> None:
        from curate.rehearsal import model_blip, model_clip, model_hf

        if entry.get("library") == "open_clip":
            model_clip.build_open_clip_hub_repo(folder, entry["arch"], str(entry["pretrained"]), seed)
            return
        if repo in BLIP_ITM_SNAPSHOTS:
            width, size = BLIP_ITM_SNAPSHOTS[repo]
            model_blip.build_blip_itm_snapshot(folder, self.blip_tokenizer(), seed, width, size)
            what = "BlipForImageTextRetrieval and its BlipProcessor (save_pretrained)"
        elif repo in BLIP_CAPTION_SNAPSHOTS:
            width, size = BLIP_CAPTION_SNAPSHOTS[repo]
            model_blip.build_blip_caption_snapshot(folder, self.blip_tokenizer(), seed, width, size)
            what = "BlipForConditionalGeneration and its BlipProcessor (save_pretrained)"
        elif repo in BLIP2_ITM_SNAPSHOTS:
            model_blip.build_blip2_itm_snapshot(folder, self.blip_tokenizer(), seed, BLIP2_ITM_SNAPSHOTS[repo])
            what = "Blip2ForImageTextRetrieval and its Blip2Processor (save_pretrained)"
        elif repo == "microsoft/git-base":
            model_hf.build_git_snapshot(folder, seed)
            what = "GitForCausalLM and its GitProcessor (save_pretrained)"
        elif repo == "openai/clip-vit-large-patch14-336":
            model_hf.build_clip_vision_snapshot(folder, seed)
            what = "CLIPModel (whose vision tower CLIPVisionModel reads) and its CLIPImageProcessor"
        elif repo == "facebook/dinov2-large":
            model_hf.build_dinov2_snapshot(folder, seed)
            what = "Dinov2Model and its BitImageProcessor (save_pretrained)"
        elif repo == "lmsys/vicuna-7b-v1.5":
            model_hf.build_llama_snapshot(folder, seed)
            what = "LlamaForCausalLM in float16, two .bin shards with their index, a SentencePiece tokenizer.model"
        elif repo == BERT_REPO:
            from curate.rehearsal.model_common import english_captions
            from curate.training.lavis_inits import tiny_bert_folder

            tiny_bert_folder(folder, english_captions(seed), seed=seed)
            what = "BertForMaskedLM (save_pretrained) with bert-base-uncased's vocab.txt and tokenizer_config.json"
        elif repo == "sentence-transformers/all-MiniLM-L6-v2":
            model_hf.build_minilm_snapshot(folder, seed)
            return  # sentence-transformers writes its own README.md
        else:
            raise ValueError(f"models.{name}: the rehearsal has no tiny stand-in for Hub repo {repo}")
        write_model_card(folder, f"Tiny stand-in of {repo}", what)


def build(root, port: int, seed: int = 0, models: dict | None = None) -> dict:
    """Build every entry of `models` (default: the catalogue's) under `root`; returns the manifest
    ``{name: {"url" | "repo", "sha256", "bytes", "served_at"}}``, also written to
    ``R/models.json``. `port`: the loopback port the local internet is served on (``served_at``)."""
    from curate.data.mirrors import mirrored
    from curate.scoring.pretrained import OPEN_CLIP_SAFE_WEIGHTS, file_sha256

    root = Path(root)
    models = catalogue() if models is None else models
    builder = _Builder(root, seed)
    base = f"http://127.0.0.1:{int(port)}"
    sources = {name: source_of(name, models[name]) for name in sorted(models)}
    paths = {name: builder.build(name, models[name], *sources[name]) for name in sources}
    builder.finish()
    manifest = {}
    for name, (kind, where) in sources.items():
        entry, path = models[name], paths[name]
        if kind == "web":
            record = {"url": where, "sha256": file_sha256(path), "bytes": path.stat().st_size}
            record["served_at"] = mirrored(where, {"https://": f"{base}/web/"})
            if where == WORDNET_URL:
                from curate.rehearsal.model_text import shape_wnids

                record["shape_wnids"] = shape_wnids()  # what an ImageNet-21k-like target list names
        else:
            weights = entry.get("weights_file") or (
                OPEN_CLIP_SAFE_WEIGHTS if entry.get("library") == "open_clip" else None
            )
            if weights is not None and not (path / weights).is_file():
                raise FileNotFoundError(f"models.{name}: the tiny {where} has no {weights}")
            record = {
                "repo": where,
                "sha256": None if weights is None else file_sha256(path / weights),
                "bytes": sum(p.stat().st_size for p in path.rglob("*") if p.is_file()),
                "served_at": f"{base}/hub/{where}",
            }
            if weights is not None:
                record["weights_file"] = weights
        manifest[name] = record
    write_json(root / MANIFEST, manifest)
    return manifest


def read_manifest(root) -> dict:
    return json.loads((Path(root) / MANIFEST).read_text())
