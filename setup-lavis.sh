#!/usr/bin/env bash
# LAVIS's own virtualenv, .venv-lavis/: salesforce-lavis 1.0.2 pins numpy 1, transformers 4.26 and
# timm 0.4.12, so it cannot share .venv. The rule train_blip_lavis runs LAVIS with this venv's
# python when the job's own interpreter has no LAVIS (locally; on a cluster run with
# --software-deployment-method conda the job runs in envs/lavis.yaml, built from the same pins).
#
#   ./setup-lavis.sh           build or bring up to date (idempotent: an unchanged lock does nothing)
#   ./setup-lavis.sh --relock  resolve envs/lavis.yaml's pins afresh and rewrite envs/lavis.lock
#
# envs/lavis.lock is the full resolution of envs/lavis.yaml's pip pins (`--relock` writes it): the
# venv installs it with --no-deps, so every run builds the same set; `pip check` then confirms it
# is consistent. The `curate` package is not installed: jobs put the checkout on PYTHONPATH.
# Several jobs may call this at once: a lock file serialises them.
# Cost here (2 shared cores): 3.5-8 min (6 min measured from the lock with a warm pip cache), 6.1 GB
# (torch 2.1.2 and its CUDA libraries: 4.3 GB), so setup.sh builds it only with --lavis.
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
venv=${LAVIS_VENV:-.venv-lavis}
lock=envs/lavis.lock
export PIP_DISABLE_PIP_VERSION_CHECK=1
# sdists whose setup.py imports pkg_resources (fairscale 0.4.4, contexttimer) build with setuptools < 81
export PIP_CONSTRAINT="$PWD/build-constraints.txt"

"$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' ||
  { echo "setup-lavis: $PYTHON is not Python 3.11 (envs/lavis.yaml's python); set PYTHON" >&2; exit 1; }

pins() { sed -n 's/^ *- \([A-Za-z0-9_.-]*==[^ ]*\) *$/\1/p' envs/lavis.yaml; }

if [ "${1:-}" = "--relock" ]; then
  scratch=$(mktemp -d)
  trap 'rm -rf "$scratch"' EXIT
  "$PYTHON" -m venv "$scratch/venv"
  pins > "$scratch/pins.txt"
  "$scratch/venv/bin/python" -m pip install --quiet --prefer-binary -r "$scratch/pins.txt"
  {
    echo "# The resolution of envs/lavis.yaml's pip pins (./setup-lavis.sh --relock), Python 3.11, linux x86_64."
    echo "# setup-lavis.sh installs it with --no-deps into .venv-lavis. Do not edit by hand."
    "$scratch/venv/bin/python" -m pip freeze --all | grep -v -E '^(pip|setuptools)=='
  } > "$lock"
  echo "setup-lavis: wrote $lock ($(grep -c '==' "$lock") packages)"
  exit 0
fi

mkdir -p "$venv"
exec 9> "$venv.lock"
flock 9

stamp=$venv/.lavis-lock.sha256
wanted=$(cat "$lock" "$0" | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ] && [ -x "$venv/bin/python" ]; then
  echo "setup-lavis: $venv is up to date"
  exit 0
fi

[ -x "$venv/bin/python" ] || "$PYTHON" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --prefer-binary --no-deps -r "$lock"
"$venv/bin/python" -m pip check
# LAVIS's registry, its BLIP pretraining model and the project's module run in this venv
PYTHONPATH="$PWD" "$venv/bin/python" -c "import curate.training.lavis_blip" > /dev/null
echo "$wanted" > "$stamp"
echo "setup-lavis: $venv ready ($(grep -E '^(salesforce-lavis|torch|transformers)==' "$lock" | tr '\n' ' '))"
