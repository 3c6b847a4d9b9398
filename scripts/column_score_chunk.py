from curate.data.scorefiles import load_scores, save_scores
from curate.workflow.job import job

with job(snakemake) as log:
    column = snakemake.params.column
    frame = load_scores(snakemake.input.scores, contract=snakemake.params.parent_contract)[["uid", column]]
    save_scores(frame, snakemake.output.scores, contract=snakemake.params.contract)
    log.info("column %s of %d samples", column, len(frame))
