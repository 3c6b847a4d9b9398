from curate.scoring.itm import convert_model
from curate.workflow.job import job

with job(snakemake) as log:
    record = convert_model(
        snakemake.params.entry,
        snakemake.input.checkpoint,
        snakemake.output[0],
        snakemake.input.processor,
    )
    log.info(
        "converted %s: %d tensors kept, %d dropped (%s), image size %d",
        record["checkpoint"],
        record["converted"],
        record["dropped"],
        ", ".join(record["dropped_prefixes"]),
        record["image_size"],
    )
