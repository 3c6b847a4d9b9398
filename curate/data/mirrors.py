"""Where bytes come from: a mirror of the web and of the Hugging Face Hub.

A cluster behind a proxy, an institutional mirror or the rehearsal's loopback server
(`curate.rehearsal`) are all the same to the workflow: the config's ``hub_endpoint`` is the Hub
every Hugging Face download talks to (it becomes ``HF_ENDPOINT`` in each job, before any Hugging
Face library is imported), and ``url_mirrors`` rewrites the start of any other URL the workflow
fetches (OpenAI's and salesforce's checkpoint files, language-ID models, WordNet):
``{"https://": "http://127.0.0.1:8765/web/"}`` sends ``https://host/path`` to
``http://127.0.0.1:8765/web/host/path``.
"""

from __future__ import annotations

import os


def mirrored(url: str, mirrors: dict | None) -> str:
    """``url`` with the longest matching prefix of ``mirrors`` replaced (unchanged if none)."""
    for prefix in sorted(mirrors or {}, key=len, reverse=True):
        if url.startswith(prefix):
            return mirrors[prefix] + url[len(prefix) :]
    return url


def use_hub_endpoint(endpoint: str | None) -> None:
    """Point every Hugging Face download of this process at ``endpoint`` (None: leave the
    environment's ``HF_ENDPOINT``, or huggingface.co, as it is)."""
    if endpoint:
        os.environ["HF_ENDPOINT"] = endpoint.rstrip("/")
