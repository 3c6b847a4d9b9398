#!/usr/bin/env bash
# Create (or bring up to date) the virtualenv .venv/ with the pinned dependencies and the curate
# package, then install the named Snakemake profile `slurm` (profiles/slurm/) where Snakemake looks
# profile names up. Idempotent: a second run with an unchanged requirements.lock installs nothing,
# and the profile is only written when absent or still as setup left it (cluster/README.md).
#
#   ./setup.sh           the project's env
#   ./setup.sh --lavis   also LAVIS's own env, .venv-lavis (setup-lavis.sh: 6 GB, minutes). Without
#                        it, the first LAVIS job (recipe mos-blip) builds that env itself.
#   TORCH_CUDA=cu126 ./setup.sh
#                        torch and torchvision (their pinned versions) from PyTorch's own index
#                        for that CUDA build instead of PyPI's default build, for a cluster whose
#                        NVIDIA driver is too old for it (README, "GPU drivers"; a job given a GPU
#                        that torch cannot use stops and names its driver: curate/devices.py).
set -euo pipefail
cd "$(dirname "$0")"

if [ "${1:-}" = "--lavis" ]; then
  "$0"
  exec ./setup-lavis.sh
fi

PYTHON=${PYTHON:-python3}
stamp=.venv/.requirements.sha256
TORCH_CUDA=${TORCH_CUDA:-}
# the stamp: the lock and pyproject (and TORCH_CUDA where set: a change reinstalls torch)
wanted=$( (cat requirements.lock pyproject.toml; [ -z "$TORCH_CUDA" ] || echo "torch_cuda=$TORCH_CUDA") | sha256sum | cut -d' ' -f1)

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ] && .venv/bin/python -c "import curate" 2>/dev/null; then
  echo "setup: .venv is up to date"
else
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
  # Some pinned packages ship only as sdists whose setup.py imports pkg_resources, which
  # setuptools >= 81 no longer has: keep their isolated build environments on an older one.
  export PIP_CONSTRAINT="$PWD/build-constraints.txt"
  export PIP_DISABLE_PIP_VERSION_CHECK=1
  .venv/bin/python -m pip install --quiet --prefer-binary -r requirements.lock
  .venv/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .
  if [ -n "$TORCH_CUDA" ]; then
    pins=$(grep -E '^(torch|torchvision)==' requirements.lock | tr '\n' ' ')
    # shellcheck disable=SC2086
    .venv/bin/python -m pip install --quiet --no-deps --force-reinstall \
      --index-url "https://download.pytorch.org/whl/$TORCH_CUDA" $pins
  fi
  echo "$wanted" > "$stamp"
  echo "setup: .venv ready ($(.venv/bin/python -c 'import torch, open_clip; print("torch", torch.__version__, "open_clip", open_clip.__version__)'))"
fi

# ${XDG_CONFIG_HOME:-~/.config}/snakemake/slurm/config.yaml: installed when absent, updated when
# only its two site lines (partition, account) differ from what setup installed, else left alone.
.venv/bin/python -m curate.workflow.slurm_profile
