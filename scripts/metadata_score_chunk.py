import json

import pandas as pd

from curate.data.metadata import chunk_metadata, read_layout
from curate.data.scorefiles import contract_columns, save_scores
from curate.data.shards import shard_paths
from curate.workflow.job import job

with job(snakemake) as log:
    scorer = snakemake.params.scorer
    layout = read_layout(snakemake.input.layout) if "layout" in snakemake.input.keys() else None
    uids, values, _, report = chunk_metadata(
        shard_paths(snakemake.input.chunk), layout, scorer["column"], pool_shards=snakemake.params.pool_shards
    )
    column = contract_columns(snakemake.params.contract)[0][0]
    save_scores(
        pd.DataFrame({"uid": uids, column: values}), snakemake.output.scores, contract=snakemake.params.contract
    )
    report["column"] = scorer["column"]
    with open(snakemake.output.report, "w") as stream:
        json.dump(report, stream, indent=2)
    log.info("read %s of %d downloaded samples; skipped: %s", scorer["column"], len(uids), report["skipped"])
