from curate.data.integrity import read_json
from curate.data.scorefiles import check_score_files, finite_scores, save_scores
from curate.selection.flyt import load_head, load_head_extractor
from curate.selection.pool_fusion import FUSED_COLUMN, fuse_chunk
from curate.workflow.job import job

with job(snakemake) as log:
    stats = read_json(snakemake.input.stats, "fusion statistics (json)")
    check_score_files(snakemake.input.scores, snakemake.params.contracts)  # one contract per scorer
    roles = snakemake.input.keys()
    fused = fuse_chunk(
        snakemake.params.fusion,
        stats,
        list(snakemake.input.scores),
        snakemake.params.columns,
        head=load_head(snakemake.input.mixer)[0] if "mixer" in roles else None,
        embeddings=snakemake.input.embeddings if "embeddings" in roles else None,
        shards=snakemake.input.shards if "shards" in roles else None,
        extractor=load_head_extractor(snakemake.input.mixer) if "shards" in roles else None,
    )
    fused, skipped = finite_scores(fused, [FUSED_COLUMN], snakemake.output[0])
    save_scores(fused, snakemake.output[0], contract=snakemake.params.contract)
    log.info(
        "fused %d samples of chunk %s with %s; skipped (not finite): %s",
        len(fused),
        snakemake.wildcards.chunk,
        snakemake.wildcards.fusion,
        skipped,
    )
