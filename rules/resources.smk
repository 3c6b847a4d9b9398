rule synthesize_curated_set:
    output:
        directory(f"{DATA}/resources/curated/{{curated_set}}"),
    log:
        f"{DATA}/logs/synthesize_curated_set/{{curated_set}}.log",
    conda:
        "../envs/download.yaml"
    params:
        curated_set=lambda wildcards: config["curated_sets"][wildcards.curated_set],
    script:
        "../scripts/synthesize_curated_set.py"


rule train_scorer:
    input:
        curated_set=get_curated_set,
    output:
        directory(f"{DATA}/models/scorers/{{scorer}}"),
    log:
        f"{DATA}/logs/train_scorer/{{scorer}}.log",
    conda:
        "../envs/train.yaml"
    threads: config["threads"]
    params:
        scorer=lambda wildcards: config["scorers"][wildcards.scorer],
        recipe=lambda wildcards: config["recipes"][
            config["scorers"][wildcards.scorer]["recipe"]
        ],
    script:
        "../scripts/train_scorer.py"


rule synthesize_task:
    output:
        directory(f"{DATA}/tasks/{{suite}}/{{task}}"),
    log:
        f"{DATA}/logs/synthesize_task/{{suite}}/{{task}}.log",
    wildcard_constraints:
        suite=suites_from("synthetic"),
    conda:
        "../envs/download.yaml"
    params:
        suite=lambda wildcards: config["suites"][wildcards.suite],
    script:
        "../scripts/synthesize_task.py"


rule synthesize_downstream_set:
    output:
        f"{DATA}/downstream/{{suite}}.npz",
    log:
        f"{DATA}/logs/synthesize_downstream_set/{{suite}}.log",
    conda:
        "../envs/download.yaml"
    params:
        suite=lambda wildcards: config["suites"][wildcards.suite],
    script:
        "../scripts/synthesize_downstream_set.py"


rule train_langid:
    output:
        f"{DATA}/resources/langid/{{langid}}.bin",
    log:
        f"{DATA}/logs/train_langid/{{langid}}.log",
    conda:
        "../envs/fuse.yaml"
    params:
        langid=lambda wildcards: config["langid_models"][wildcards.langid],
    script:
        "../scripts/train_langid.py"
