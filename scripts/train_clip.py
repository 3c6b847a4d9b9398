from curate.logs import log_to
from curate.reshard import train_data
from curate.train import train_clip

with log_to(snakemake.log[0]) as log:
    recipe = snakemake.params.recipe
    model_dir = train_clip(
        recipe,
        train_data=train_data(snakemake.input[0]),
        train_num_samples=recipe["samples_seen"] // recipe["epochs"],
        out_dir=snakemake.output[0],
        seed=snakemake.params.seed,
        log_path=snakemake.log[0],
        threads=snakemake.threads,
    )
    log.info("model saved to %s", model_dir)
