import os
import subprocess
from pathlib import Path

import yaml

from curate.training.lavis_config import run_config, torchrun_command
from curate.workflow.job import job

with job(snakemake) as log:
    recipe = snakemake.params.recipe
    out_dir = Path(snakemake.output[0])
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg_path = out_dir / "lavis_run.yaml"
    cfg_path.write_text(yaml.safe_dump(run_config(recipe, snakemake.input.reshard, out_dir, recipe["seed"])))
    endpoint = (
        f"{os.environ['MASTER_ADDR']}:{os.environ.get('MASTER_PORT', '29500')}" if "MASTER_ADDR" in os.environ else None
    )
    command = torchrun_command(recipe, cfg_path, rdzv_endpoint=endpoint)
    log.info("LAVIS run config %s; launching %s", cfg_path, " ".join(command))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(Path.cwd()), os.environ.get("PYTHONPATH")])))
    with open(snakemake.log[0], "a") as sink:
        subprocess.run(command, check=True, env=env, stdout=sink, stderr=subprocess.STDOUT)
    log.info("LAVIS checkpoints in %s", out_dir / "train")
