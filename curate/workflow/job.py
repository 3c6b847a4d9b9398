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
