from curate.data.synthetic.curated import write_curated_set
from curate.workflow.job import job

with job(snakemake) as log:
    entry = snakemake.params.curated_set
    summary = write_curated_set(
        out_dir=snakemake.output[0],
        n_samples=entry["n_samples"],
        seed=entry["seed"],
        text_in_image_rate=entry["text_in_image_rate"],
    )
    log.info("curated set %s: %s", snakemake.wildcards.curated_set, summary)
