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
