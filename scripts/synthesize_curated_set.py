from curate.logs import log_to
from curate.synthetic.curated import write_curated_set

with log_to(snakemake.log[0]) as log:
    entry = snakemake.params.curated_set
    summary = write_curated_set(
        out_dir=snakemake.output[0],
        n_samples=entry["n_samples"],
        seed=entry["seed"],
        text_in_image_rate=entry.get("text_in_image_rate", 0.0),
    )
    log.info("curated set %s: %s", snakemake.wildcards.curated_set, summary)
