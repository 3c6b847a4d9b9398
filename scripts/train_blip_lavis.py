import json
from pathlib import Path

from curate.scoring.pretrained import FETCH_RECORD
from curate.training.lavis_config import lavis_interpreter, train_lavis
from curate.workflow.job import job

with job(snakemake) as log:
    fetched = Path(snakemake.input.vision_init)
    vision_init = fetched / json.loads((fetched / FETCH_RECORD).read_text())["file"]
    with open(snakemake.log[0], "a") as sink:
        python = lavis_interpreter(snakemake.params.lavis_python, sink)
    # LAVIS's run lives in the training's scratch folder until it finishes: a failed, retried or
    # requeued attempt leaves it, and the next goes on from its latest epoch
    last = train_lavis(
        snakemake.params.recipe,
        snakemake.input.reshard,
        snakemake.output[0],
        snakemake.params.scratch,
        vision_init,
        snakemake.input.text_init,
        python,
        snakemake.threads,
        snakemake.log[0],
        log,
    )
    log.info("LAVIS checkpoints in %s (last: %s)", last.parent, last.name)
