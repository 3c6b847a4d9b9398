# One rule per trainer (curate.training.trainers.TRAINERS): each recipe is trained by its
# trainer's rule only (wildcard constraints), and all write the same model folder.


rule train_clip:
    input:
        P("reshard"),
    output:
        directory(P("model")),
    log:
        P.log("train_clip", "pool", "selection", "recipe"),
    wildcard_constraints:
        recipe=WS.recipes_trained_by("train_clip"),
    conda:
        "../envs/train.yaml"
    threads: config["threads"]
    resources:
        gpu=get_training_gpus,
    params:
        recipe=lambda wildcards: config["recipes"][wildcards.recipe],
    script:
        "../scripts/train_clip.py"


rule train_weighted_clip:
    input:
        P("reshard"),
    output:
        directory(P("model")),
    log:
        P.log("train_weighted_clip", "pool", "selection", "recipe"),
    wildcard_constraints:
        recipe=WS.recipes_trained_by("train_weighted_clip"),
    conda:
        "../envs/train.yaml"
    threads: config["threads"]
    resources:
        gpu=get_training_gpus,
    params:
        recipe=lambda wildcards: config["recipes"][wildcards.recipe],
    script:
        "../scripts/train_weighted_clip.py"
