from curate.logs import log_to
from curate.recaption import recaption_table
from curate.selection import load_strategy_scores, recaption_uids

with log_to(snakemake.log[0]) as log:
    entry = snakemake.params.selection
    uids, scores = load_strategy_scores(entry, list(snakemake.input.scores))
    chosen = recaption_uids(uids, scores, entry["rho"])
    table = recaption_table(chosen, list(snakemake.input.captions))
    table.to_parquet(snakemake.output[0], index=False)
    log.info("re-captioned the lowest %.1f%%: %d of %d samples, e.g. %s", 100 * entry["rho"], len(table),
             len(uids), table["caption"].head(3).tolist())
