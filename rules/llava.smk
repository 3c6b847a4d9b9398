rule build_llava_base:
    input:
        unpack(get_llava_base_inputs),
    output:
        directory(P("llava_base")),
    log:
        P.log("build_llava_base", "recipe"),
    conda:
        "../envs/llava.yaml"
    threads: config["threads"]
    params:
        base=lambda wildcards: config["recipes"][wildcards.recipe]["base"],
    script:
        "../scripts/build_llava_base.py"


rule train_llava:
    input:
        reshard=P("reshard"),
        base=P("llava_base"),
    output:
        directory(P("model")),
    log:
        P.log("train_llava", "pool", "selection", "recipe"),
    wildcard_constraints:
        recipe=WS.recipes_trained_by("train_llava"),
    conda:
        "../envs/llava.yaml"
    threads: config["threads"]
    resources:
        gpu=get_training_gpus,
    params:
        recipe=lambda wildcards: config["recipes"][wildcards.recipe],
        scratch=P("train_scratch"),
    script:
        "../scripts/train_llava.py"


rule evaluate_llava:
    input:
        tasks=get_task_dirs,
        model=P("model"),
    output:
        P("evaluation"),
    log:
        P.log("evaluate_llava", "pool", "selection", "recipe", "suite"),
    wildcard_constraints:
        recipe=WS.recipes_evaluated_by("evaluate_llava"),
    conda:
        "../envs/llava.yaml"
    threads: config["threads"]
    params:
        tasks=lambda wildcards: config["suites"][wildcards.suite]["tasks"],
        batch_size=config["eval_batch_size"],
        progress=P("evaluation_progress"),
    script:
        "../scripts/evaluate_llava.py"
