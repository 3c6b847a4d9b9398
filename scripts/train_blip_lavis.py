import json
import os
import subprocess
from pathlib import Path

import yaml

from curate.scoring.pretrained import FETCH_RECORD
from curate.training.lavis_config import (
    last_checkpoint,
    lavis_interpreter,
    run_config,
    threads_per_process,
    torchrun_command,
)
from curate.workflow.job import job

with job(snakemake) as log:
    recipe = snakemake.params.recipe
    out_dir = Path(snakemake.output[0])
    out_dir.mkdir(parents=True, exist_ok=True)
    fetched = Path(snakemake.input.vision_init)
    vision_init = fetched / json.loads((fetched / FETCH_RECORD).read_text())["file"]
    cfg = run_config(recipe, snakemake.input.reshard, out_dir, recipe["seed"], vision_init, snakemake.input.text_init)
    cfg_path = out_dir / "lavis_run.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    with open(snakemake.log[0], "a") as sink:
        python = lavis_interpreter(snakemake.params.lavis_python, sink)
    endpoint = (
        f"{os.environ['MASTER_ADDR']}:{os.environ.get('MASTER_PORT', '29500')}" if "MASTER_ADDR" in os.environ else None
    )
    command = torchrun_command(recipe, cfg_path, python=python, rdzv_endpoint=endpoint)
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
    log.info("LAVIS checkpoints in %s (last: %s)", out_dir / "train", last_checkpoint(out_dir).name)
