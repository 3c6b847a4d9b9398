from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config.yaml"


validate(config, "schemas/config.schema.yaml")


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
include: "rules/evaluate.smk"
include: "rules/tables.smk"


rule all:
    input:
        "results/table1.csv",
        f"{DATA}/downstream/{SCALE['suite']}.npz",


onsuccess:
    print_built_tables()
