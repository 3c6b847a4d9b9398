rule train_blip:
    input:
        unpack(get_tiny_blip_inputs),
    output:
        directory(f"{DATA}/models/{{pool}}/{{selection}}/{{recipe}}"),
    log:
        f"{DATA}/logs/train_blip/{{pool}}/{{selection}}/{{recipe}}.log",
    wildcard_constraints:
        recipe=blip_recipes("transformers"),
    conda:
        "../envs/blip.yaml"
    threads: config["threads"]
    resources:
        gpu=get_training_gpus,
    params:
        recipe=lambda wildcards: config["recipes"][wildcards.recipe],
        seed=0,
    script:
        "../scripts/train_blip.py"


rule train_blip_lavis:
    input:
        reshard=f"{DATA}/reshards/{{pool}}/{{selection}}",
    output:
        directory(f"{DATA}/models/{{pool}}/{{selection}}/{{recipe}}"),
    log:
        f"{DATA}/logs/train_blip_lavis/{{pool}}/{{selection}}/{{recipe}}.log",
    wildcard_constraints:
        recipe=blip_recipes("lavis"),
    conda:
        "../envs/lavis.yaml"
    threads: config["threads"]
    resources:
        gpu=get_training_gpus,
    params:
        recipe=lambda wildcards: config["recipes"][wildcards.recipe],
        seed=0,
    script:
        "../scripts/train_blip_lavis.py"


rule evaluate_blip:
    input:
        tasks=get_task_dirs,
        model=f"{DATA}/models/{{pool}}/{{selection}}/{{recipe}}",
    output:
        f"{DATA}/evals/{{pool}}/{{selection}}/{{recipe}}/{{suite}}.jsonl",
    log:
        f"{DATA}/logs/evaluate_blip/{{pool}}/{{selection}}/{{recipe}}/{{suite}}.log",
    wildcard_constraints:
        recipe=recipes_trained_by("blip"),
    conda:
        "../envs/blip.yaml"
    threads: config["threads"]
    params:
        tasks=lambda wildcards: config["suites"][wildcards.suite]["tasks"],
        batch_size=config.get("eval_batch_size", 256),
    script:
        "../scripts/evaluate_blip.py"
