rule evaluate_model:
    input:
        tasks=get_task_dirs,
        model=f"{DATA}/models/{{pool}}/{{selection}}/{{recipe}}",
    output:
        f"{DATA}/evals/{{pool}}/{{selection}}/{{recipe}}/{{suite}}.jsonl",
    log:
        f"{DATA}/logs/evaluate_model/{{pool}}/{{selection}}/{{recipe}}/{{suite}}.log",
    wildcard_constraints:
        recipe=recipes_trained_by("open_clip", "weighted_clip"),
    conda:
        "../envs/eval.yaml"
    threads: config["threads"]
    params:
        tasks=lambda wildcards: config["suites"][wildcards.suite]["tasks"],
        batch_size=config.get("eval_batch_size", 256),
    script:
        "../scripts/evaluate_model.py"


rule evaluate_scorer:
    input:
        tasks=get_task_dirs,
        model=get_scorer_model,
    output:
        f"{DATA}/evals/scorers/{{scorer}}/{{suite}}.jsonl",
    log:
        f"{DATA}/logs/evaluate_scorer/{{scorer}}/{{suite}}.log",
    conda:
        "../envs/eval.yaml"
    threads: config["threads"]
    params:
        tasks=lambda wildcards: config["suites"][wildcards.suite]["tasks"],
        batch_size=config.get("eval_batch_size", 256),
    script:
        "../scripts/evaluate_model.py"
