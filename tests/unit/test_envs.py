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


#: envs/lavis.yaml: the packages where salesforce-lavis 1.0.2 (the real BLIP trainer, run only in
#: its own env) cannot agree with requirements.lock, and why. Every other package there is the lock's.
LAVIS_OWN_PINS = {
    "salesforce-lavis": "the real BLIP trainer itself; the project's env cannot hold it (below)",
    "transformers": "LAVIS 1.0.2 requires transformers>=4.25,<4.27 (the lock: 5.x)",
    "tokenizers": "the tokenizers transformers 4.26 accepts (<0.14)",
    "timm": "LAVIS 1.0.2 pins timm==0.4.12 (its ViT)",
    "opencv-python-headless": "LAVIS 1.0.2 pins 4.5.5.64, a build against numpy 1",
    "numpy": "numpy<2: opencv 4.5.5 and torch 2.1 are built against numpy 1",
    "torch": "a torch of LAVIS's era that transformers 4.26 and fairscale 0.4.4 run with, built for numpy 1",
    "torchvision": "the torchvision of that torch",
    "fairscale": "LAVIS 1.0.2 pins fairscale==0.4.4",
    "pyarrow": "pyarrow 26 (the lock's) needs numpy 2; 25.0.1 is built for numpy 1 (curate's shard readers import it)",
}


def test_lavis_env_is_the_only_one_with_own_pins():
    """The exemption is the LAVIS env's alone, and every exempt package is pinned there."""
    spec = yaml.safe_load((ROOT / "envs" / "lavis.yaml").read_text())
    pip = next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict) and "pip" in d)
    names = {r.split("==")[0].lower() for r in pip}
    assert set(LAVIS_OWN_PINS) <= names
    assert {"pandas", "pillow", "webdataset", "pycocoevalcap"} <= names  # shared ones stay the lock's
    numpy = next(r for r in pip if r.lower().startswith("numpy=="))
    assert int(numpy.split("==")[1].split(".")[0]) < 2
    pandas = next(r for r in pip if r.lower().startswith("pandas=="))
    assert int(pandas.split("==")[1].split(".")[0]) < 3


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
        if env.name == "lavis.yaml" and key in LAVIS_OWN_PINS:
            continue
        assert key in pins, f"{env.name}: {name} is not in requirements.lock"
        assert pins[key] == version, f"{env.name}: {name}=={version} but the lock has {pins[key]}"


def test_lavis_lock_resolves_the_lavis_env_exactly():
    """envs/lavis.lock (setup-lavis.sh --relock; .venv-lavis installs it with --no-deps) holds every
    pin of envs/lavis.yaml at its version, and one version of each package."""
    spec = yaml.safe_load((ROOT / "envs" / "lavis.yaml").read_text())
    pip = next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict) and "pip" in d)
    lock = {}
    for line in (ROOT / "envs" / "lavis.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            key = name.lower().replace("_", "-")
            assert key not in lock, f"envs/lavis.lock lists {name} twice"
            lock[key] = version
    for requirement in pip:
        name, version = requirement.split("==")
        assert lock.get(name.lower().replace("_", "-")) == version, f"envs/lavis.lock: {name} is not {version}"
