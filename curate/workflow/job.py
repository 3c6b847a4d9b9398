"""The start of every rule script: its log, the config's plugins imported (a plugin's fusion or
selection method must be registered in the job that runs it, not only where the workflow was
parsed), the config's Hugging Face endpoint in force (`curate.data.mirrors`) and its
``integrity`` tolerances applied to every file the job reads (`curate.data.integrity`)."""

from __future__ import annotations

import contextlib

from curate.data.integrity import set_tolerances, tolerances
from curate.data.mirrors import use_hub_endpoint
from curate.logs import log_to
from curate.registry import load_plugins


@contextlib.contextmanager
def job(snakemake):
    """``with job(snakemake) as log:``: logging and stderr of the block go to the rule's log, and
    the config's ``integrity`` section is what the block tolerates (`curate.data.integrity`)."""
    load_plugins(snakemake.config.get("plugins"))
    use_hub_endpoint(snakemake.config.get("hub_endpoint"))
    previous = tolerances()
    set_tolerances(snakemake.config["integrity"])
    try:
        with log_to(snakemake.log[0]) as log:
            yield log
    finally:
        set_tolerances(previous)


def model_threads(snakemake) -> int:
    """The torch threads of a job's model: the config's ``threads`` (a job with loader workers asks
    for ``threads + loader_workers`` CPUs, the workers take the rest), never more than it got."""
    return max(1, min(int(snakemake.threads), int(snakemake.config["threads"])))


def loader_workers(snakemake) -> int:
    """The loader's worker processes of a job that reads pool images: the config's
    ``loader_workers``, within the CPUs the job got beyond its model's threads."""
    wanted = int(snakemake.config.get("loader_workers", 0))
    return max(0, min(wanted, int(snakemake.threads) - model_threads(snakemake)))
