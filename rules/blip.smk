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
        scratch=P("train_scratch"),
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
        scratch=P("train_scratch"),
        lavis_python=config["lavis_python"],
    script:
        "../scripts/train_blip_lavis.py"


# LAVIS on several nodes (MoS: 16 GPUs), as train_clip_nodes: one torchrun per node through srun.
use rule train_blip_lavis as train_blip_lavis_nodes with:
    log:
        P.log("train_blip_lavis_nodes", "pool", "selection", "recipe"),
    wildcard_constraints:
        recipe=WS.recipes_trained_by("train_blip_lavis_nodes"),
    resources:
        nodes=get_training_nodes,
        tasks=get_training_nodes,
        mpi="srun",
        slurm_extra=get_training_node_extra,


# A LAVIS run's last checkpoint in the transformers layout evaluate_blip reads.
rule convert_blip_lavis:
    input:
        P("model"),
    output:
        directory(P("blip_converted")),
    log:
        P.log("convert_blip_lavis", "pool", "selection", "recipe"),
    wildcard_constraints:
        recipe=WS.recipes_trained_by("train_blip_lavis", "train_blip_lavis_nodes"),
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
        progress=P("evaluation_progress"),
    script:
        "../scripts/evaluate_blip.py"
