import json
import os
import shutil
import subprocess
from pathlib import Path

import yaml

from curate.scoring.pretrained import FETCH_RECORD
from curate.training import launch
from curate.training.lavis_config import (
    last_checkpoint,
    latest_checkpoint,
    lavis_interpreter,
    run_config,
    threads_per_process,
    torchrun_command,
)
from curate.training.resume import finish_scratch, prepare_scratch, reshard_fingerprint
from curate.workflow.job import job

with job(snakemake) as log:
    recipe = snakemake.params.recipe
    out_dir = Path(snakemake.output[0])
    out_dir.mkdir(parents=True, exist_ok=True)
    fetched = Path(snakemake.input.vision_init)
    vision_init = fetched / json.loads((fetched / FETCH_RECORD).read_text())["file"]
    # LAVIS writes its run (checkpoints, arch.json, tokenizer) into the scratch folder, which a
    # failed or requeued attempt leaves in place: the next one goes on from the latest epoch
    # (curate.training.resume)
    scratch, kept = prepare_scratch(
        snakemake.params.scratch,
        {
            "recipe": recipe,
            "data": reshard_fingerprint(snakemake.input.reshard),
            "inits": [str(vision_init), str(Path(snakemake.input.text_init))],
        },
    )
    run_dir = scratch / "lavis"
    run_dir.mkdir(parents=True, exist_ok=True)
    resume = latest_checkpoint(run_dir) if kept else None
    cfg = run_config(
        recipe, snakemake.input.reshard, run_dir, recipe["seed"], vision_init, snakemake.input.text_init, resume=resume
    )
    cfg_path = out_dir / "lavis_run.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    if resume is not None:
        log.info("resuming LAVIS from %s, left by an earlier attempt", resume)
    with open(snakemake.log[0], "a") as sink:
        python = lavis_interpreter(snakemake.params.lavis_python, sink)
    if int(recipe["nodes"]) > 1:  # one torchrun per node of the allocation, through srun
        hosts = launch.allocation_hosts()
        command = launch.srun_prefix(int(recipe["nodes"])) + torchrun_command(
            recipe, cfg_path, python=python, rdzv_endpoint=launch.rendezvous_endpoint(hosts)
        )
    else:
        command = torchrun_command(recipe, cfg_path, python=python)
    log.info("LAVIS run config %s; launching %s", cfg_path, " ".join(command))
    repo = str(Path(__file__).resolve().parents[1])
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")])),
        OMP_NUM_THREADS=str(threads_per_process(recipe, snakemake.threads)),
        HF_HUB_OFFLINE="1",  # the inits are fetched files: nothing downloads here
        TRANSFORMERS_OFFLINE="1",
    )
    with open(snakemake.log[0], "a") as sink:
        subprocess.run(command, check=True, env=env, stdout=sink, stderr=subprocess.STDOUT)
    for part in run_dir.iterdir():  # train/ (checkpoints), arch.json, tokenizer/: what the conversion reads
        shutil.move(part, out_dir / part.name)
    finish_scratch(scratch)
    log.info("LAVIS checkpoints in %s (last: %s)", out_dir / "train", last_checkpoint(out_dir).name)
