from curate.data.reshard import train_data
from curate.training.clip import train_clip
from curate.workflow.job import job

with job(snakemake) as log:
    recipe = snakemake.params.recipe
    model_dir = train_clip(
        recipe,
        train_data=train_data(snakemake.input[0]),
        train_num_samples=recipe["samples_seen"] // recipe["epochs"],
        out_dir=snakemake.output[0],
        seed=recipe["seed"],
        log_path=snakemake.log[0],
        threads=snakemake.threads,
        workers=recipe["workers"],
        scratch=snakemake.params.scratch,
        plugins=snakemake.config["plugins"],
    )
    log.info("model saved to %s", model_dir)
