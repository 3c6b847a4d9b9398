from curate.training.lavis_convert import convert_lavis_blip
from curate.workflow.job import job

with job(snakemake) as log:
    record = convert_lavis_blip(snakemake.input[0], snakemake.output[0])
    log.info(
        "converted %s: %d tensors, %d dropped (%s)",
        record["checkpoint"],
        record["converted"],
        record["dropped"],
        ", ".join(record["dropped_prefixes"]),
    )
