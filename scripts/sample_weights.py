from curate.data.scorefiles import check_score_files
from curate.selection.methods import chunk_scores
from curate.selection.strategies import weights_table
from curate.workflow.job import job

with job(snakemake) as log:
    check_score_files(snakemake.input.scores, snakemake.params.score_contract)
    uids, scores = chunk_scores(snakemake.params.selection, {"scores": list(snakemake.input.scores)})
    table = weights_table(uids, scores)
    table.to_parquet(snakemake.output[0], index=False)
    log.info(
        "%d weights: min %.4f, mean %.4f, max %.4f",
        len(table),
        table["weight"].min(),
        table["weight"].mean(),
        table["weight"].max(),
    )
