rule train_clip:
    input:
        f"{DATA}/reshards/{{pool}}/{{selection}}",
    output:
        directory(f"{DATA}/models/{{pool}}/{{selection}}/{{recipe}}"),
    log:
        f"{DATA}/logs/train_clip/{{pool}}/{{selection}}/{{recipe}}.log",
    wildcard_constraints:
        recipe=recipes_trained_by("open_clip"),
    conda:
        "../envs/train.yaml"
    threads: config["threads"]
    resources:
        gpu=get_training_gpus,
    params:
        recipe=lambda wildcards: config["recipes"][wildcards.recipe],
        seed=0,
    script:
        "../scripts/train_clip.py"


rule train_weighted_clip:
    input:
        f"{DATA}/reshards/{{pool}}/{{selection}}",
    output:
        directory(f"{DATA}/models/{{pool}}/{{selection}}/{{recipe}}"),
    log:
        f"{DATA}/logs/train_weighted_clip/{{pool}}/{{selection}}/{{recipe}}.log",
    wildcard_constraints:
        recipe=recipes_trained_by("weighted_clip"),
    conda:
        "../envs/train.yaml"
    threads: config["threads"]
    resources:
        gpu=get_training_gpus,
    params:
        recipe=lambda wildcards: config["recipes"][wildcards.recipe],
        seed=0,
    script:
        "../scripts/train_weighted_clip.py"
