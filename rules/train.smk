rule train_clip:
    input:
        f"{DATA}/reshards/{{pool}}/{{selection}}",
    output:
        directory(f"{DATA}/models/{{pool}}/{{selection}}/{{recipe}}"),
    log:
        f"{DATA}/logs/train_clip/{{pool}}/{{selection}}/{{recipe}}.log",
    conda:
        "../envs/train.yaml"
    threads: config["threads"]
    params:
        recipe=lambda wildcards: config["recipes"][wildcards.recipe],
        seed=0,
    script:
        "../scripts/train_clip.py"
