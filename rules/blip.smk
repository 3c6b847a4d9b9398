rule train_blip:
    input:
        unpack(get_tiny_blip_inputs),
    output:
        directory(P("model")),
    log:
        P.log("train_blip", "pool", "selection", "recipe"),
    wildcard_constraints:
        recipe=WS.recipes_trained_by("train_blip"),
    conda:
        "../envs/blip.yaml"
    threads: config["threads"]
    resources:
        gpu=get_training_gpus,
    params:
        recipe=lambda wildcards: config["recipes"][wildcards.recipe],
    script:
        "../scripts/train_blip.py"


rule train_blip_lavis:
    input:
        unpack(get_lavis_blip_inputs),
    output:
        directory(P("model")),
    log:
        P.log("train_blip_lavis", "pool", "selection", "recipe"),
    wildcard_constraints:
        recipe=WS.recipes_trained_by("train_blip_lavis"),
    conda:
        "../envs/lavis.yaml"
    threads: config["threads"]
    resources:
        gpu=get_training_gpus,
    params:
        recipe=lambda wildcards: config["recipes"][wildcards.recipe],
        lavis_python=config["lavis_python"],
    script:
        "../scripts/train_blip_lavis.py"


# A LAVIS run's last checkpoint in the transformers layout evaluate_blip reads.
rule convert_blip_lavis:
    input:
        P("model"),
    output:
        directory(P("blip_converted")),
    log:
        P.log("convert_blip_lavis", "pool", "selection", "recipe"),
    wildcard_constraints:
        recipe=WS.recipes_trained_by("train_blip_lavis"),
    conda:
        "../envs/blip.yaml"
    script:
        "../scripts/convert_blip_lavis.py"


rule evaluate_blip:
    input:
        tasks=get_task_dirs,
        model=get_blip_model,
    output:
        P("evaluation"),
    log:
        P.log("evaluate_blip", "pool", "selection", "recipe", "suite"),
    wildcard_constraints:
        recipe=WS.recipes_evaluated_by("evaluate_blip"),
    conda:
        "../envs/blip.yaml"
    threads: config["threads"]
    params:
        tasks=lambda wildcards: config["suites"][wildcards.suite]["tasks"],
        batch_size=config["eval_batch_size"],
    script:
        "../scripts/evaluate_blip.py"
