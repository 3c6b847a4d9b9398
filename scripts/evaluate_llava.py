import torch

from curate.data.records import write_records
from curate.devices import job_device
from curate.evaluation.llava import evaluate_captioning
from curate.workflow.job import job

with job(snakemake) as log:
    torch.set_num_threads(snakemake.threads)
    tasks = {
        key: dict(spec, dir=task_dir)
        for (key, spec), task_dir in zip(snakemake.params.tasks.items(), snakemake.input.tasks)
    }
    records = evaluate_captioning(
        snakemake.input.model, tasks, batch_size=snakemake.params.batch_size, device=job_device(snakemake)
    )
    write_records(records, snakemake.output[0])
    for record in records:
        log.info("%s: %s", record["key"], record["metrics"]["main_metric"])
