rule synthesize_curated_set:
    output:
        directory(P("curated_set")),
    log:
        P.log("synthesize_curated_set", "curated_set"),
    conda:
        "../envs/download.yaml"
    params:
        curated_set=lambda wildcards: config["curated_sets"][wildcards.curated_set],
    script:
        "../scripts/synthesize_curated_set.py"


rule train_scorer:
    input:
        curated_set=lambda wildcards: P(
            "curated_set",
            curated_set=config["scorers"][wildcards.scorer]["curated_set"],
        ),
    output:
        directory(P("trained_scorer")),
    log:
        P.log("train_scorer", "scorer"),
    wildcard_constraints:
        scorer=WS.trained_scorers_of_kind("open_clip", "hyperbolic_clip"),
    conda:
        "../envs/train.yaml"
    threads: config["threads"]
    resources:
        gpu=get_scorer_training_gpus,
    params:
        scorer=lambda wildcards: config["scorers"][wildcards.scorer],
        recipe=lambda wildcards: config["recipes"][
            config["scorers"][wildcards.scorer]["recipe"]
        ],
        scratch=P("scorer_scratch"),
    script:
        "../scripts/train_scorer.py"


# A BLIP image-text matching scorer built here: a tiny BLIP pretrained on a curated set
# (curate.training.blip), its retrieval model saved where the ITM scorer loads it.
rule train_itm_scorer:
    input:
        curated_set=lambda wildcards: P(
            "curated_set",
            curated_set=config["scorers"][wildcards.scorer]["curated_set"],
        ),
    output:
        directory(P("trained_scorer")),
    log:
        P.log("train_itm_scorer", "scorer"),
    wildcard_constraints:
        scorer=WS.trained_scorers_of_kind("blip_itm"),
    conda:
        "../envs/blip.yaml"
    threads: config["threads"]
    params:
        scorer=lambda wildcards: config["scorers"][wildcards.scorer],
        recipe=lambda wildcards: config["recipes"][
            config["scorers"][wildcards.scorer]["recipe"]
        ],
    script:
        "../scripts/train_itm_scorer.py"


rule synthesize_task:
    output:
        directory(P("synthetic_task")),
    log:
        P.log("synthesize_task", "suite", "task"),
    wildcard_constraints:
        suite=WS.suites_from("synthetic"),
    conda:
        "../envs/download.yaml"
    params:
        suite=lambda wildcards: config["suites"][wildcards.suite],
    script:
        "../scripts/synthesize_task.py"


# A labelled set of the synthetic world (a `datasets` entry with `source: synthetic`)
rule synthesize_dataset:
    output:
        directory(P("dataset")),
    log:
        P.log("synthesize_dataset", "dataset"),
    wildcard_constraints:
        dataset=WS.datasets_made_by("synthesize_dataset"),
    conda:
        "../envs/download.yaml"
    params:
        entry=lambda wildcards: config["datasets"][wildcards.dataset],
    script:
        "../scripts/synthesize_dataset.py"


# A `models` entry that is a seeded random initialisation of an architecture (FLYT's "random
# initialization"), written once so every job loads the same weights
rule init_model:
    output:
        directory(P("pretrained_model")),
    log:
        P.log("init_model", "model"),
    wildcard_constraints:
        model=WS.models_of("random"),
    conda:
        "../envs/score.yaml"
    params:
        entry=lambda wildcards: config["models"][wildcards.model],
    script:
        "../scripts/init_model.py"


rule train_langid:
    output:
        P("langid_model"),
    log:
        P.log("train_langid", "langid"),
    wildcard_constraints:
        langid=WS.trained("langid_models"),
    conda:
        "../envs/fuse.yaml"
    params:
        langid=lambda wildcards: config["langid_models"][wildcards.langid],
    script:
        "../scripts/train_langid.py"
