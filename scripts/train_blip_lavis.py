import os
import shutil
import subprocess
from pathlib import Path

import yaml

from curate.training import launch
from curate.training.lavis_config import latest_checkpoint, run_config, torchrun_command
from curate.training.resume import finish_scratch, prepare_scratch, reshard_fingerprint
from curate.workflow.job import job

with job(snakemake) as log:
    recipe = snakemake.params.recipe
    out_dir = Path(snakemake.output[0])
    out_dir.mkdir(parents=True, exist_ok=True)
    # LAVIS writes its checkpoints into the scratch folder, which a failed or requeued attempt
    # leaves in place: the next one goes on from the latest (curate.training.resume)
    scratch, kept = prepare_scratch(
        snakemake.params.scratch, {"recipe": recipe, "data": reshard_fingerprint(snakemake.input.reshard)}
    )
    resume = latest_checkpoint(scratch / "lavis") if kept else None
    cfg = run_config(recipe, snakemake.input.reshard, scratch / "lavis", recipe["seed"], resume=resume)
    cfg_path = out_dir / "lavis_run.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    if resume is not None:
        log.info("resuming LAVIS from %s, left by an earlier attempt", resume)
    if int(recipe["nodes"]) > 1:  # one torchrun per node of the allocation, through srun
        hosts = launch.allocation_hosts()
        command = launch.srun_prefix(int(recipe["nodes"])) + torchrun_command(
            recipe, cfg_path, rdzv_endpoint=launch.rendezvous_endpoint(hosts)
        )
    else:
        command = torchrun_command(recipe, cfg_path)
    log.info("LAVIS run config %s; launching %s", cfg_path, " ".join(command))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(Path.cwd()), os.environ.get("PYTHONPATH")])))
    with open(snakemake.log[0], "a") as sink:
        subprocess.run(command, check=True, env=env, stdout=sink, stderr=subprocess.STDOUT)
    shutil.move(scratch / "lavis", out_dir / "train")
    finish_scratch(scratch)
    log.info("LAVIS checkpoints in %s", out_dir / "train")
