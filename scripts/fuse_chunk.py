import json

from curate.data.scorefiles import save_scores
from curate.selection.flyt import load_head
from curate.selection.pool_fusion import FUSED_COLUMN, fuse_chunk
from curate.workflow.job import job

with job(snakemake) as log:
    with open(snakemake.input.stats) as stream:
        stats = json.load(stream)
    roles = snakemake.input.keys()
    fused = fuse_chunk(
        snakemake.params.fusion,
        stats,
        list(snakemake.input.scores),
        snakemake.params.columns,
        head=load_head(snakemake.input.mixer)[0] if "mixer" in roles else None,
        embeddings=snakemake.input.embeddings if "embeddings" in roles else None,
    )
    save_scores(fused, snakemake.output[0], [FUSED_COLUMN])
    log.info("fused %d samples of chunk %s with %s", len(fused), snakemake.wildcards.chunk, snakemake.wildcards.fusion)
