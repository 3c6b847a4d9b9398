import json

from curate.evaluate import read_records
from curate.logs import log_to
from curate.selection import fusion_statistics, scorer_accuracy

with log_to(snakemake.log[0]) as log:
    fusion = snakemake.params.fusion
    files = list(snakemake.input.scores)
    m = len(fusion["scorers"])
    chunk_files = [files[i : i + m] for i in range(0, len(files), m)]
    accuracies = None
    if "accuracy" in snakemake.input.keys():
        task = fusion["accuracy"]["task"]
        accuracies = [scorer_accuracy(read_records(path), task) for path in snakemake.input.accuracy]
    stats = fusion_statistics(chunk_files, fusion, accuracies, snakemake.params.columns)
    with open(snakemake.output[0], "w") as stream:
        json.dump(stats, stream, indent=2)
    log.info("fusion %s statistics: %s", snakemake.wildcards.fusion, stats)
