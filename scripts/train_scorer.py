from curate.data.reshard import train_data
from curate.training.clip import train_clip
from curate.workflow.job import job

with job(snakemake) as log:
    scorer = snakemake.params.scorer
    if scorer["library"] == "hyperbolic_clip":  # a hyperbolic CLIP (MERU's loss), saved in HYPE's release files
        from curate.training.hyperbolic_clip import train_hyperbolic_clip

        summary = train_hyperbolic_clip(
            snakemake.params.recipe,
            snakemake.input.curated_set,
            scorer["arch"],
            snakemake.output[0],
            seed=scorer["seed"],
            reference_size=scorer["reference_size"],
            threads=snakemake.threads,
        )
        log.info("hyperbolic scorer %s saved to %s: %s", snakemake.wildcards.scorer, snakemake.output[0], summary)
    else:
        recipe = dict(snakemake.params.recipe, model=scorer["arch"])
        model_dir = train_clip(
            recipe,
            train_data=train_data(snakemake.input.curated_set),
            train_num_samples=recipe["samples_seen"] // recipe["epochs"],
            out_dir=snakemake.output[0],
            seed=scorer["seed"],
            log_path=snakemake.log[0],
            threads=snakemake.threads,
        )
        log.info("scorer %s saved to %s", snakemake.wildcards.scorer, model_dir)
