rule paper_table:
    input:
        get_paper_table_evaluations,
    output:
        report(
            "results/{paper}/{table}.csv",
            caption="../report/paper_table.rst",
            category=paper_category,
            subcategory="Tables",
        ),
    log:
        f"{DATA}/logs/paper_table/{{paper}}/{{table}}.log",
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
            "results/figures/{figure}.png",
            caption="../report/figure.rst",
            category=figure_category,
            subcategory="Figures",
        ),
    log:
        f"{DATA}/logs/figure/{{figure}}.log",
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
        evaluation=f"{DATA}/evals/{{pool}}/{{selection}}/{{recipe}}/{{suite}}.jsonl",
        subset=f"{DATA}/subsets/{{pool}}/{{selection}}.npy",
    output:
        results="results/submissions/{pool}/{selection}/{recipe}/{suite}/eval_results.jsonl",
        uids="results/submissions/{pool}/{selection}/{recipe}/{suite}/uids.npy",
        info="results/submissions/{pool}/{selection}/{recipe}/{suite}/info.json",
    log:
        f"{DATA}/logs/submission/{{pool}}/{{selection}}/{{recipe}}/{{suite}}.log",
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
