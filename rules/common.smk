# The workflow's globals and input functions. Each input function is one question to the
# Workspace (curate.workflow.workspace), which answers it from the registries and the paths module.
from pathlib import Path

from curate.reporting.papers import load_papers, table_ids
from curate.workflow.claims import (
    claim_comparisons,
    claims_inputs,
    ground_truth_inputs,
    ground_truth_rows,
    noise_harm_inputs,
    noise_harm_rows,
)
from curate.workflow.figure_plans import figure_plans
from curate.workflow.paper_rows import (
    implemented_methods,
    resolve_table,
    table_evaluations,
)
from curate.workflow.tables import pending_rows, table_inputs, table_rows
from curate.workflow.workspace import Workspace, names_pattern

WS = Workspace(config)
P = WS.paths
SCALE = WS.scale
PAPERS = load_papers(Path(workflow.basedir) / "papers")
FIGURES = figure_plans(WS)


wildcard_constraints:
    pool=r"[^/]+",
    chunk=r"\d+",
    scorer=r"[^/]+",
    curated_set=r"[^/]+",
    selection=r"[^/]+",
    recipe=r"[^/]+",
    suite=r"[^/]+",
    task=r"[^/]+",
    fusion=r"[^/]+",
    captioner=r"[^/]+",
    sentence_encoder=r"[^/]+",
    langid=r"[^/]+",
    model=r"[^/]+",
    published=r"[^/]+",
    dataset=r"[^/]+",


def get_chunk_shard_ids(wildcards):
    return WS.chunk_shard_ids(wildcards.pool, wildcards.chunk)


def get_chunk_input(wildcards):
    return WS.chunk_input(wildcards.pool, wildcards.chunk)


def get_chunk_inputs(wildcards):
    return WS.chunk_inputs(wildcards.pool)


def get_metadata_source(wildcards):
    return WS.metadata_source(wildcards.pool)


def get_metadata_layout_inputs(wildcards):
    return WS.metadata_layout_inputs(wildcards.pool)


def get_metadata_layout_params(wildcards):
    return WS.metadata_layout_params(wildcards.pool)


def get_index_inputs(wildcards):
    return WS.index_inputs(wildcards.pool)


def get_index_threads(wildcards):
    # a retry of failed urls downloads with the pool's img2dataset processes; an index reads alone
    pool = config["pools"][wildcards.pool]
    return pool["download"]["processes"] if pool["retry_failed"] else 1


def get_scorer_inputs(wildcards):
    return WS.scorer_inputs(wildcards.scorer, wildcards.pool, wildcards.chunk)


def get_group_inputs(kind):
    return lambda wildcards: WS.group_inputs(kind, wildcards.pool, wildcards.chunk)


def get_scorer_model(wildcards):
    return WS.scorer_model(wildcards.scorer)


def get_scorer_batch_size(wildcards):
    return WS.batch_size(wildcards.scorer)


def get_scorer_contract(wildcards):
    return WS.score_contract(wildcards.scorer)


def get_selection_score_contract(wildcards):
    return WS.selection_score_contract(wildcards.selection)


def get_fusion_contracts(wildcards):
    return WS.fusion_contracts(wildcards.fusion)


def get_captioner_model(wildcards):
    return WS.captioner_model(wildcards.captioner)


def get_conversion_inputs(wildcards):
    return WS.conversion_inputs(wildcards.model)


def get_embed_dataset_inputs(wildcards):
    return WS.embed_dataset_inputs(wildcards.dataset, wildcards.scorer)


def get_mixer_downstream(wildcards):
    return WS.mixer_downstream(wildcards.fusion)


def get_classifier_inputs(wildcards):
    return WS.classifier_inputs(wildcards.scorer, wildcards.pool)


def get_fusion_stats_inputs(wildcards):
    return WS.fusion_stats_inputs(wildcards.pool, wildcards.fusion)


def get_fuse_chunk_inputs(wildcards):
    return WS.fuse_chunk_inputs(wildcards.pool, wildcards.fusion, wildcards.chunk)


def get_mixer_inputs(wildcards):
    return WS.mixer_inputs(wildcards.pool, wildcards.fusion)


def get_fusion_columns(wildcards):
    return WS.fusion_columns(wildcards.fusion)


def get_selection_inputs(wildcards):
    return WS.selection_inputs(wildcards.pool, wildcards.selection)


def get_selection_params(wildcards):
    return WS.selection_params(wildcards.selection)


def get_strategy_scores(wildcards):
    return WS.strategy_scores(wildcards.pool, wildcards.selection)


def get_reshard_inputs(wildcards):
    return WS.reshard_inputs(wildcards.pool, wildcards.selection)


def get_subset_max_missing(wildcards):
    return WS.subset_max_missing(wildcards.selection)


def get_recaption_captions(wildcards):
    return WS.recaption_captions(wildcards.pool, wildcards.selection)


def get_training_gpus(wildcards):
    return WS.training_gpus(wildcards.recipe)


def get_scorer_training_gpus(wildcards):
    return WS.training_gpus(config["scorers"][wildcards.scorer]["recipe"])


def get_training_nodes(wildcards):
    return WS.multi_node_resources(wildcards.recipe)["nodes"]


def get_training_node_extra(wildcards):
    return WS.multi_node_resources(wildcards.recipe)["slurm_extra"]


def get_task_dirs(wildcards):
    return WS.task_dirs(wildcards.suite)


def get_llava_base_inputs(wildcards):
    return WS.llava_base_inputs(wildcards.recipe)


def get_tiny_blip_inputs(wildcards):
    return WS.tiny_blip_inputs(wildcards.pool, wildcards.selection, wildcards.recipe)


def get_lavis_blip_inputs(wildcards):
    return WS.lavis_blip_inputs(wildcards.pool, wildcards.selection, wildcards.recipe)


def get_blip_model(wildcards):
    return WS.blip_model(wildcards.pool, wildcards.selection, wildcards.recipe)


def paper_table_rows(paper, table):
    """Every row of a paper table resolved at the current scale (built or not, and why)."""
    return resolve_table(
        config,
        PAPERS[paper]["tables"][table],
        implemented_methods(),
        P,
        f"{paper}/{table}",
    )


def get_paper_table_evaluations(wildcards):
    return table_evaluations(paper_table_rows(wildcards.paper, wildcards.table))


def paper_table_targets():
    return [
        P("paper_table", paper=paper, table=table) for paper, table in table_ids(PAPERS)
    ]


def get_figure_inputs(wildcards):
    return FIGURES[wildcards.figure]["inputs"]


def figure_targets():
    return [P("figure", figure=name) for name in FIGURES]


# report categories: a paper's (or a figure's, by its name's first word) short name
CATEGORIES = {"datacomp": "DataComp", "sieve": "Sieve", "mos": "MoS", "flyt": "FLYT"}


def figure_category(wildcards):
    return CATEGORIES.get(wildcards.figure.split("_")[0], "Workflow results")


def paper_category(wildcards):
    return CATEGORIES.get(wildcards.paper, wildcards.paper)


def print_built_tables():
    built = sorted(Path(P.results).glob("**/*.csv"))
    if built:
        print("Tables written:", *(f"  {path.resolve()}" for path in built), sep="\n")
