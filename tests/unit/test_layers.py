"""curate/ is layered (docs/design.md): a package imports only from the packages below it."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "curate"
LAYERS = [
    "registry",
    "logs",
    "devices",
    "data",
    "scoring",
    "training",
    "selection",
    "evaluation",
    "reporting",
    "workflow",
    "rehearsal",
]


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "curate" else ""


def imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
    return found


def test_no_package_imports_one_above_it():
    upward = []
    for path in ROOT.rglob("*.py"):
        own = path.relative_to(ROOT).parts[0].removesuffix(".py")
        if own not in LAYERS:
            continue
        for module in imports(path):
            other = package_of(module)
            if other in LAYERS and LAYERS.index(other) > LAYERS.index(own):
                upward.append(f"{path.relative_to(ROOT)} imports {module}")
    assert not upward, upward


def test_every_module_belongs_to_a_layer():
    tops = {p.relative_to(ROOT).parts[0].removesuffix(".py") for p in ROOT.rglob("*.py")}
    assert tops - {"__init__", "model_configs"} <= set(LAYERS)
