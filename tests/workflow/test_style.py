"""The workflow stays clean by Snakemake's linter and formatted by snakefmt."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.workflow.conftest import ROOT

pytestmark = pytest.mark.workflow

BIN = Path(sys.executable).parent


def test_snakefmt_leaves_every_snakefile_unchanged():
    files = ["Snakefile", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "rules").glob("*.smk"))]
    assert len(files) > 10
    result = subprocess.run([str(BIN / "snakefmt"), "--check", *files], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_snakemake_lint_is_clean(tmp_path, snakemake_run):
    result = snakemake_run(tmp_path, "--lint", timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "Congratulations, your workflow is in a good condition!" in result.stdout + result.stderr


def test_ruff_check_and_format_are_clean():
    for command in (["check", "."], ["format", "--check", "."]):
        result = subprocess.run([str(BIN / "ruff"), *command], cwd=ROOT, capture_output=True, text=True)
        assert result.returncode == 0, f"ruff {' '.join(command)}:\n{result.stdout}{result.stderr}"
