from snakemake.utils import min_version

from curate.workflow.config import prepare_config

min_version("9.0")


configfile: "config.yaml"


# The run's config with the catalogues (config/*.yaml) and generated entries under it, checked,
# every default filled and the scale's stand-ins applied (curate.workflow.config).
config.update(prepare_config(config, workflow.basedir))


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/pool.smk"
include: "rules/download.smk"
include: "rules/resources.smk"
include: "rules/score.smk"
include: "rules/caption.smk"
include: "rules/fuse.smk"
include: "rules/subset.smk"
include: "rules/train.smk"
include: "rules/llava.smk"
include: "rules/blip.smk"
include: "rules/evaluate.smk"
include: "rules/tables.smk"
include: "rules/papers.smk"


rule all:
    input:
        P("table", table="table1"),


# Every paper table (results/<paper>/<table>.csv) at the current scale; not part of `all`.
rule papers:
    input:
        paper_table_targets(),


# Every figure the current scale can draw (results/figures/*.png); not part of `all`.
rule figures:
    input:
        figure_targets(),


onsuccess:
    print_built_tables()
