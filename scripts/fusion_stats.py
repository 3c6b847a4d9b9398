import json

from curate.data.integrity import writing
from curate.data.scorefiles import check_score_files
from curate.selection.pool_fusion import fusion_statistics, split_chunk_files
from curate.workflow.job import job

with job(snakemake) as log:
    fusion = snakemake.params.fusion
    check_score_files(snakemake.input.scores, snakemake.params.contracts)  # one contract per scorer
    files = split_chunk_files(snakemake.input.scores, len(fusion["scorers"]))
    inputs = {role: snakemake.input[role] for role in snakemake.input.keys() if role != "scores"}
    stats = fusion_statistics(files, fusion, snakemake.params.columns, inputs)
    with writing(snakemake.output[0], "fusion statistics (json)"), open(snakemake.output[0], "w") as stream:
        json.dump(stats, stream, indent=2)
    log.info("fusion %s statistics: %s", snakemake.wildcards.fusion, stats)
