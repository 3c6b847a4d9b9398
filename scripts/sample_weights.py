from curate.logs import log_to
from curate.selection import load_strategy_scores, weights_table

with log_to(snakemake.log[0]) as log:
    uids, scores = load_strategy_scores(snakemake.params.selection, list(snakemake.input.scores))
    table = weights_table(uids, scores)
    table.to_parquet(snakemake.output[0], index=False)
    log.info("%d weights: min %.4f, mean %.4f, max %.4f", len(table), table["weight"].min(),
             table["weight"].mean(), table["weight"].max())
