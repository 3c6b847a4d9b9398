"""How a training is started: one process, torchrun on this node, or one torchrun per node.

- ``world_size`` 1: the entry point in this Python.
- ``world_size`` W > 1 on one node: ``torchrun --standalone --nproc_per_node=W`` (DataComp's
  recipes: 8 GPUs of one node).
- ``nodes`` N > 1: as DataComp's ``slurm_train.sh`` starts its training on every node of its
  allocation with ``srun``, the job runs ``srun --nodes=N --ntasks-per-node=1`` (one task per
  node) of ``torchrun --nnodes=N --nproc_per_node=W/N`` with a c10d rendezvous at the first node
  of the allocation (``scontrol show hostnames $SLURM_JOB_NODELIST``, DataComp's MASTER_ADDR) on
  ``MASTER_PORT`` (DataComp's 12802 unless set), keyed by ``SLURM_JOB_ID``. The job must hold
  those nodes: the training rules of such recipes ask SLURM for ``--nodes=N`` with one task and
  W/N GPUs per node (`curate.training.trainers.multi_node_resources`), and run on the allocation's
  first node without the executor's own ``srun`` (Snakemake's ``mpi`` resource), so that this
  ``srun`` spreads over every node.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

#: DataComp's slurm_train.sh: ``export MASTER_PORT=12802``.
DEFAULT_MASTER_PORT = 12802

__all__ = [
    "DEFAULT_MASTER_PORT",
    "processes_per_node",
    "allocation_hosts",
    "rendezvous_endpoint",
    "srun_prefix",
    "rendezvous_args",
    "torchrun_args",
    "per_node_command",
    "training_command",
]


def processes_per_node(recipe: dict) -> int:
    """The processes (GPUs) torchrun starts on each node: ``world_size / nodes``."""
    world, nodes = int(recipe["world_size"]), int(recipe.get("nodes", 1))
    if nodes < 1 or world < 1 or world % nodes:
        raise ValueError(f"recipe: world_size {world} does not split evenly over {nodes} nodes")
    return world // nodes


def allocation_hosts(environ=None, run=subprocess.run) -> list[str]:
    """The hosts of this SLURM allocation, in SLURM's order (``scontrol show hostnames``)."""
    environ = os.environ if environ is None else environ
    nodelist = environ.get("SLURM_JOB_NODELIST") or environ.get("SLURM_NODELIST")
    if not nodelist:
        raise RuntimeError(
            "a recipe with nodes > 1 runs inside a SLURM allocation of that many nodes (snakemake --profile slurm): "
            "SLURM_JOB_NODELIST is not set"
        )
    if shutil.which("scontrol") is None and run is subprocess.run:
        raise RuntimeError("scontrol not found: cannot list the nodes of this SLURM allocation")
    done = run(["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True, check=True)
    return [line.strip() for line in done.stdout.splitlines() if line.strip()]


def rendezvous_endpoint(hosts: list[str], environ=None) -> str:
    """``host:port`` of the c10d rendezvous: the allocation's first host, ``MASTER_PORT`` or 12802."""
    environ = os.environ if environ is None else environ
    return f"{hosts[0]}:{int(environ.get('MASTER_PORT', DEFAULT_MASTER_PORT))}"


def srun_prefix(nodes: int) -> list[str]:
    """``srun`` of one task on each of ``nodes`` nodes of the allocation (a failing task ends the step)."""
    return ["srun", f"--nodes={nodes}", f"--ntasks={nodes}", "--ntasks-per-node=1", "--kill-on-bad-exit=1"]


def rendezvous_args(nodes: int, per_node: int, endpoint: str, job_id: str | None = None) -> list[str]:
    """torchrun's arguments for ``nodes`` nodes of ``per_node`` processes meeting at ``endpoint``."""
    if not endpoint:
        raise ValueError(f"{nodes} nodes need a rendezvous endpoint (host:port)")
    return [
        f"--nnodes={nodes}",
        f"--nproc_per_node={per_node}",
        "--rdzv_backend=c10d",
        f"--rdzv_endpoint={endpoint}",
        f"--rdzv_id={job_id or 'curate'}",
    ]


def torchrun_args(recipe: dict, endpoint: str | None = None, job_id: str | None = None) -> list[str]:
    """torchrun's own arguments for a recipe: standalone on one node, else a c10d rendezvous."""
    nodes, per_node = int(recipe.get("nodes", 1)), processes_per_node(recipe)
    if nodes == 1:
        return ["--standalone", f"--nproc_per_node={per_node}"]
    return rendezvous_args(nodes, per_node, endpoint, job_id)


def per_node_command(entry: list[str], per_node: int, environ=None, run=subprocess.run) -> list[str]:
    """``srun`` of one torchrun on every node of this SLURM allocation, each starting ``per_node``
    processes of ``python <entry>``, meeting at the allocation's first node (module doc)."""
    environ = os.environ if environ is None else environ
    hosts = allocation_hosts(environ, run)
    endpoint = rendezvous_endpoint(hosts, environ)
    torchrun = [sys.executable, "-m", "torch.distributed.run"]
    args = rendezvous_args(len(hosts), per_node, endpoint, environ.get("SLURM_JOB_ID"))
    return [*srun_prefix(len(hosts)), *torchrun, *args, *_after_torchrun(entry)]


def _after_torchrun(entry: list[str]) -> list[str]:
    """``entry`` as torchrun's arguments: "--" after the script or module ends torchrun's own
    options, so that its parser leaves the script's alone (it read open_clip_train's --logs as an
    abbreviation of its --logs-specs and stopped: "ambiguous option")."""
    at = 2 if entry[:1] == ["-m"] else 1
    return [*entry[:at], "--", *entry[at:]]


def training_command(entry: list[str], recipe: dict, environ=None, run=subprocess.run) -> list[str]:
    """The command that runs ``python <entry>`` (``-m module args...``) for a recipe: one process,
    torchrun on this node, or ``srun`` of one torchrun per node (module doc)."""
    environ = os.environ if environ is None else environ
    nodes, world = int(recipe.get("nodes", 1)), int(recipe["world_size"])
    if nodes == 1 and world == 1:
        return [sys.executable, *entry]
    if nodes == 1:
        return [sys.executable, "-m", "torch.distributed.run", *torchrun_args(recipe), *_after_torchrun(entry)]
    hosts = allocation_hosts(environ, run)
    if len(hosts) != nodes:
        raise RuntimeError(
            f"the recipe asks for {nodes} nodes but this SLURM allocation holds {len(hosts)} ({', '.join(hosts)})"
        )
    return per_node_command(entry, processes_per_node(recipe), environ, lambda *a, **k: _hosts_answer(hosts))


def _hosts_answer(hosts):
    return subprocess.CompletedProcess([], 0, stdout="\n".join(hosts) + "\n")
