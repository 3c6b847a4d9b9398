"""Every rule names a conda env that exists, parses and pins what the local lock pins."""

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def lock_pins():
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    return pins


def rules_and_envs():
    """(rule, env path) for every rule in rules/*.smk; env None where a rule names none."""
    found = []
    for smk in sorted((ROOT / "rules").glob("*.smk")):
        for block in re.split(r"^rule ", smk.read_text(), flags=re.M)[1:]:
            name = block.split(":", 1)[0].strip()
            env = re.search(r'^\s+conda:\s*\n\s+"([^"]+)"', block, re.M)
            found.append((name, (smk.parent / env.group(1)).resolve() if env else None))
    return found


def test_rules_are_found():
    assert len(rules_and_envs()) >= 10


@pytest.mark.parametrize("rule, env", rules_and_envs(), ids=lambda v: getattr(v, "name", v))
def test_every_rule_names_an_existing_env(rule, env):
    assert env is not None, f"rule {rule} names no conda env"
    assert env.is_file(), f"rule {rule}: {env} does not exist"


@pytest.mark.parametrize("env", sorted((ROOT / "envs").glob("*.yaml")), ids=lambda p: p.name)
def test_env_parses_and_agrees_with_the_lock(env):
    spec = yaml.safe_load(env.read_text())
    assert spec["name"] == f"curate-{env.stem}"
    deps = spec["dependencies"]
    assert "python=3.11" in deps
    pip = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    pins = lock_pins()
    for requirement in pip:
        name, version = requirement.split("==")
        key = name.lower().replace("_", "-")
        assert key in pins, f"{env.name}: {name} is not in requirements.lock"
        assert pins[key] == version, f"{env.name}: {name}=={version} but the lock has {pins[key]}"
