import json

from curate.evaluate import read_records
from curate.logs import log_to
from curate.selection import fusion_statistics, scorer_accuracy
from curate.workflow import chunk_files

with log_to(snakemake.log[0]) as log:
    fusion = snakemake.params.fusion
    accuracies = None
    if "accuracy" in snakemake.input.keys():
        task = fusion["accuracy"]["task"]
        accuracies = [scorer_accuracy(read_records(path), task) for path in snakemake.input.accuracy]
    files = chunk_files(snakemake.input.scores, len(fusion["scorers"]))
    stats = fusion_statistics(files, fusion, accuracies, snakemake.params.columns)
    with open(snakemake.output[0], "w") as stream:
        json.dump(stats, stream, indent=2)
    log.info("fusion %s statistics: %s", snakemake.wildcards.fusion, stats)
