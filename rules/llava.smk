rule build_llava_base:
    input:
        unpack(get_llava_base_inputs),
    output:
        directory(f"{DATA}/models/llava_bases/{{recipe}}"),
    log:
        f"{DATA}/logs/build_llava_base/{{recipe}}.log",
    conda:
        "../envs/llava.yaml"
    threads: config["threads"]
    params:
        base=lambda wildcards: config["recipes"][wildcards.recipe]["base"],
    script:
        "../scripts/build_llava_base.py"


rule train_llava:
    input:
        reshard=f"{DATA}/reshards/{{pool}}/{{selection}}",
        base=f"{DATA}/models/llava_bases/{{recipe}}",
    output:
        directory(f"{DATA}/models/{{pool}}/{{selection}}/{{recipe}}"),
    log:
        f"{DATA}/logs/train_llava/{{pool}}/{{selection}}/{{recipe}}.log",
    wildcard_constraints:
        recipe=recipes_trained_by("llava"),
    conda:
        "../envs/llava.yaml"
    threads: config["threads"]
    resources:
        gpu=get_training_gpus,
    params:
        recipe=lambda wildcards: config["recipes"][wildcards.recipe],
        seed=0,
    script:
        "../scripts/train_llava.py"


rule evaluate_llava:
    input:
        tasks=get_task_dirs,
        model=f"{DATA}/models/{{pool}}/{{selection}}/{{recipe}}",
    output:
        f"{DATA}/evals/{{pool}}/{{selection}}/{{recipe}}/{{suite}}.jsonl",
    log:
        f"{DATA}/logs/evaluate_llava/{{pool}}/{{selection}}/{{recipe}}/{{suite}}.log",
    wildcard_constraints:
        recipe=recipes_trained_by("llava"),
    conda:
        "../envs/llava.yaml"
    threads: config["threads"]
    params:
        tasks=lambda wildcards: config["suites"][wildcards.suite]["tasks"],
        batch_size=config.get("eval_batch_size", 256),
    script:
        "../scripts/evaluate_llava.py"
