# One rule per trainer (curate.training.trainers.TRAINERS): each recipe is trained by its
# trainer's rule only (wildcard constraints), and all write the same model folder.


rule train_clip:
    input:
        P("reshard"),
    output:
        directory(P("model")),
    log:
        P.log("train_clip", "pool", "selection", "recipe"),
    wildcard_constraints:
        recipe=WS.recipes_trained_by("train_clip"),
    conda:
        "../envs/train.yaml"
    threads: config["threads"]
    resources:
        gpu=get_training_gpus,
    params:
        recipe=lambda wildcards: config["recipes"][wildcards.recipe],
        scratch=P("train_scratch"),
    script:
        "../scripts/train_clip.py"


# A recipe with nodes > 1: the same job on a SLURM allocation of that many nodes, one task and
# world_size / nodes GPUs on each; it runs on the first node without the executor's srun (`mpi`),
# and its script's srun starts one torchrun per node (curate.training.launch), as DataComp's
# slurm_train.sh does.
use rule train_clip as train_clip_nodes with:
    log:
        P.log("train_clip_nodes", "pool", "selection", "recipe"),
    wildcard_constraints:
        recipe=WS.recipes_trained_by("train_clip_nodes"),
    resources:
        nodes=get_training_nodes,
        tasks=get_training_nodes,
        mpi="srun",
        slurm_extra=get_training_node_extra,


rule train_weighted_clip:
    input:
        P("reshard"),
    output:
        directory(P("model")),
    log:
        P.log("train_weighted_clip", "pool", "selection", "recipe"),
    wildcard_constraints:
        recipe=WS.recipes_trained_by("train_weighted_clip"),
    conda:
        "../envs/train.yaml"
    threads: config["threads"]
    resources:
        gpu=get_training_gpus,
    params:
        recipe=lambda wildcards: config["recipes"][wildcards.recipe],
        scratch=P("train_scratch"),
    script:
        "../scripts/train_weighted_clip.py"
