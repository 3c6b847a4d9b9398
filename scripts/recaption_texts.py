from curate.data.scorefiles import check_score_files
from curate.selection.methods import chunk_scores
from curate.selection.strategies import recaption_table, recaption_uids
from curate.workflow.job import job

with job(snakemake) as log:
    entry = snakemake.params.selection
    check_score_files(snakemake.input.scores, snakemake.params.score_contract)
    uids, scores = chunk_scores(entry, {"scores": list(snakemake.input.scores)})
    chosen = recaption_uids(uids, scores, entry["rho"])
    table = recaption_table(chosen, list(snakemake.input.captions))
    table.to_parquet(snakemake.output[0], index=False)
    log.info(
        "re-captioned the lowest %.1f%%: %d of %d samples, e.g. %s",
        100 * entry["rho"],
        len(table),
        len(uids),
        table["caption"].head(3).tolist(),
    )
