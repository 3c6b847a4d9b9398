"""The rehearsal's local internet: every byte the paper scale fetches, in the format its source
delivers it, built from seeds and served on loopback, so the paper scale's real code paths run
here end to end with tiny weights (`scale: rehearsal`).

Layout of a built root (``python -m curate.rehearsal build --root R``)::

    R/hub/models/<org>/<name>/...      Hugging Face model repos (revision ``main``)
    R/hub/datasets/<org>/<name>/...    Hugging Face dataset repos: the pools' metadata
                                       (curate.rehearsal.pools), the evaluation sets
                                       (curate.rehearsal.evalsets)
    R/web/<host>/<path>                every other URL, https://<host>/<path>
    R/img/<pool>/...                   the pools' images (their metadata's URLs point here)
    R/faults.json                      image URLs that answer 404, time out or are corrupt
    R/ground_truth/<pool>.parquet      what the generator made of each pool row (not served)
    R/built.json                       what each part was built from (a rebuild skips the rest)
    R/server.pid, R/server.log         the background server of ``up``

``python -m curate.rehearsal serve --root R --port P`` serves it on 127.0.0.1: the Hub's API and
file routes for ``hub/`` (the config's ``hub_endpoint``), ``/web/`` for plain URLs (the config's
``url_mirrors: {"https://": "http://127.0.0.1:P/web/"}``) and ``/img/`` with its faults
(curate.rehearsal.server). The fetch rules run unchanged against it, as against a mirror.
``up`` builds what is out of date and serves in the background, ``down`` stops it
(curate.rehearsal.cli).

This package sits above every other (it builds models with the scoring and training code).
"""
