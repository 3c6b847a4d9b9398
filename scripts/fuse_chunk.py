import json

from curate.flyt import load_head
from curate.logs import log_to
from curate.score import save_scores
from curate.selection import FUSED_COLUMN, fuse_chunk, fuse_embeddings_chunk

with log_to(snakemake.log[0]) as log:
    fusion = snakemake.params.fusion
    with open(snakemake.input.stats) as stream:
        stats = json.load(stream)
    head = load_head(snakemake.input.mixer)[0] if "mixer" in snakemake.input.keys() else None
    if fusion["method"] == "eflyt":
        fused = fuse_embeddings_chunk(snakemake.input.embeddings, head)
    else:
        fused = fuse_chunk(list(snakemake.input.scores), fusion, stats, snakemake.params.columns, head)
    save_scores(fused, snakemake.output[0], [FUSED_COLUMN])
    log.info("fused %d samples of chunk %s with %s", len(fused), snakemake.wildcards.chunk, snakemake.wildcards.fusion)
