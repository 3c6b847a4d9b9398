rule table1:
    input:
        **table_inputs(WS, "table1"),
    output:
        report(
            P("table", table="table1"),
            caption="../report/table1.rst",
            category="Workflow results",
            subcategory="Tables",
        ),
    log:
        P.log("table1"),
    conda:
        "../envs/fuse.yaml"
    params:
        rows=table_rows(WS, "table1"),
        groups=config["suites"][SCALE["suite"]]["groups"],
    script:
        "../scripts/make_table1.py"


rule table2:
    input:
        **table_inputs(WS, "table2"),
    output:
        report(
            P("table", table="table2"),
            caption="../report/table2.rst",
            category="Workflow results",
            subcategory="Tables",
        ),
    log:
        P.log("table2"),
    conda:
        "../envs/fuse.yaml"
    params:
        rows=table_rows(WS, "table2", labels=True),
        pending=pending_rows(config, "table2"),
        groups=config["suites"][SCALE["suite"]]["groups"],
    script:
        "../scripts/make_table2.py"


# What only the synthetic pool's ground truth shows (curate.reporting.noise): per selection, the
# share of each noise type its subset keeps; whether precision at equal subset size ranks the
# downstream Average; what each noise type, swapped into clean data, does to a model.
rule noise_kept:
    input:
        **ground_truth_inputs(WS, "noise_kept"),
    output:
        report(
            P("table", table="noise_kept"),
            caption="../report/noise_kept.rst",
            category="Workflow results",
            subcategory="Tables",
        ),
    log:
        P.log("noise_kept"),
    conda:
        "../envs/fuse.yaml"
    params:
        rows=ground_truth_rows(WS, "noise_kept"),
    script:
        "../scripts/make_noise_tables.py"


rule precision_vs_average:
    input:
        **ground_truth_inputs(WS, "precision_vs_average", with_evaluations=True),
    output:
        report(
            P("table", table="precision_vs_average"),
            caption="../report/noise_kept.rst",
            category="Workflow results",
            subcategory="Tables",
        ),
    log:
        P.log("precision_vs_average"),
    conda:
        "../envs/fuse.yaml"
    params:
        rows=ground_truth_rows(WS, "precision_vs_average", with_evaluations=True),
        groups=config["suites"][SCALE["suite"]]["groups"],
    script:
        "../scripts/make_noise_tables.py"


rule noise_harm:
    input:
        **noise_harm_inputs(WS),
    output:
        report(
            P("table", table="noise_harm"),
            caption="../report/noise_kept.rst",
            category="Workflow results",
            subcategory="Tables",
        ),
    log:
        P.log("noise_harm"),
    conda:
        "../envs/fuse.yaml"
    params:
        rows=noise_harm_rows(WS),
        groups=config["suites"][SCALE["suite"]]["groups"],
    script:
        "../scripts/make_noise_tables.py"


# The papers' claims, measured on this scale's runs (curate.reporting.claims).
rule claims:
    input:
        **claims_inputs(WS),
    output:
        report(
            P("table", table="claims"),
            caption="../report/claims.rst",
            category="Workflow results",
            subcategory="Tables",
        ),
    log:
        P.log("claims"),
    conda:
        "../envs/fuse.yaml"
    params:
        comparisons=claim_comparisons(WS),
        groups=config["suites"][SCALE["suite"]]["groups"],
    script:
        "../scripts/make_claims.py"
