from curate.itm import convert_model
from curate.logs import log_to

with log_to(snakemake.log[0]) as log:
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
