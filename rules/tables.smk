rule table1:
    input:
        **get_table_inputs("table1"),
    output:
        report(
            "results/table1.csv",
            caption="../report/table1.rst",
            category="Workflow results",
            subcategory="Tables",
        ),
    log:
        f"{DATA}/logs/tables/table1.log",
    conda:
        "../envs/fuse.yaml"
    params:
        rows=table_rows("table1"),
        groups=config["suites"][SCALE["suite"]]["groups"],
    script:
        "../scripts/make_table1.py"


rule table2:
    input:
        **get_table_inputs("table2"),
    output:
        report(
            "results/table2.csv",
            caption="../report/table2.rst",
            category="Workflow results",
            subcategory="Tables",
        ),
    log:
        f"{DATA}/logs/tables/table2.log",
    conda:
        "../envs/fuse.yaml"
    params:
        rows=table_rows("table2", labels=True),
        pending=pending_rows("table2"),
        groups=config["suites"][SCALE["suite"]]["groups"],
    script:
        "../scripts/make_table2.py"
