"""``python -m curate.rehearsal build|serve|up|down``: build the local internet, serve it."""

from curate.rehearsal.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
