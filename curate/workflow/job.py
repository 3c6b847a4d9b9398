"""The start of every rule script: its log, and the config's plugins imported (a plugin's fusion
or selection method must be registered in the job that runs it, not only where the workflow
was parsed)."""

from __future__ import annotations

from curate.logs import log_to
from curate.registry import load_plugins


def job(snakemake):
    """``with job(snakemake) as log:``: logging and stderr of the block go to the rule's log."""
    load_plugins(snakemake.config.get("plugins"))
    return log_to(snakemake.log[0])
