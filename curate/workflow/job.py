"""The start of every rule script: its log, the config's plugins imported (a plugin's fusion or
selection method must be registered in the job that runs it, not only where the workflow was
parsed) and the config's Hugging Face endpoint in force (`curate.data.mirrors`)."""

from __future__ import annotations

from curate.data.mirrors import use_hub_endpoint
from curate.logs import log_to
from curate.registry import load_plugins


def job(snakemake):
    """``with job(snakemake) as log:``: logging and stderr of the block go to the rule's log."""
    load_plugins(snakemake.config.get("plugins"))
    use_hub_endpoint(snakemake.config.get("hub_endpoint"))
    return log_to(snakemake.log[0])
