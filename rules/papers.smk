rule paper_table:
    input:
        get_paper_table_evaluations,
    output:
        report(
            P("paper_table"),
            caption="../report/paper_table.rst",
            category=paper_category,
            subcategory="Tables",
        ),
    log:
        P.log("paper_table", "paper", "table"),
    wildcard_constraints:
        paper="|".join(PAPERS),
        table=r"[^/]+",
    conda:
        "../envs/fuse.yaml"
    params:
        table=lambda wildcards: PAPERS[wildcards.paper]["tables"][wildcards.table],
        rows=lambda wildcards: paper_table_rows(wildcards.paper, wildcards.table),
        suites=config["suites"],
    script:
        "../scripts/make_paper_table.py"


rule figure:
    input:
        unpack(get_figure_inputs),
    output:
        report(
            P("figure"),
            caption="../report/figure.rst",
            category=figure_category,
            subcategory="Figures",
        ),
    log:
        P.log("figure", "figure"),
    wildcard_constraints:
        figure="|".join(FIGURES) or "no-figure",
    conda:
        "../envs/figures.yaml"
    params:
        plan=lambda wildcards: FIGURES[wildcards.figure],
    script:
        "../scripts/draw_figure.py"


rule submission:
    input:
        evaluation=P("evaluation"),
        subset=P("subset"),
    output:
        results=P("submission_results"),
        uids=P("submission_uids"),
        info=P("submission_info"),
    log:
        P.log("submission", "pool", "selection", "recipe", "suite"),
    conda:
        "../envs/fuse.yaml"
    params:
        info=lambda wildcards: {
            "pool": wildcards.pool,
            "selection": wildcards.selection,
            "selection_entry": config["selections"][wildcards.selection],
            "recipe": wildcards.recipe,
            "recipe_entry": config["recipes"][wildcards.recipe],
            "suite": wildcards.suite,
        },
        groups=lambda wildcards: config["suites"][wildcards.suite]["groups"],
    script:
        "../scripts/write_submission.py"
