rule evaluate_model:
    input:
        tasks=get_task_dirs,
        model=P("model"),
    output:
        P("evaluation"),
    log:
        P.log("evaluate_model", "pool", "selection", "recipe", "suite"),
    wildcard_constraints:
        recipe=WS.recipes_evaluated_by("evaluate_model"),
    conda:
        "../envs/eval.yaml"
    threads: config["threads"]
    params:
        tasks=lambda wildcards: config["suites"][wildcards.suite]["tasks"],
        batch_size=config["eval_batch_size"],
        progress=P("evaluation_progress"),
    script:
        "../scripts/evaluate_model.py"


rule evaluate_scorer:
    input:
        tasks=get_task_dirs,
        model=get_scorer_model,
    output:
        P("scorer_evaluation"),
    log:
        P.log("evaluate_scorer", "scorer", "suite"),
    conda:
        "../envs/eval.yaml"
    threads: config["threads"]
    params:
        tasks=lambda wildcards: config["suites"][wildcards.suite]["tasks"],
        batch_size=config["eval_batch_size"],
        progress=P("scorer_evaluation_progress"),
    script:
        "../scripts/evaluate_model.py"
