"""The named SLURM profile: setup.sh installs profiles/slurm/config.yaml where Snakemake looks a
profile name up, so that ``snakemake --profile slurm`` works as typed (cluster/README.md).

The installed copy belongs to the user, whose only edits are its two site lines (``partition``,
``account``). :func:`install` writes the copy when there is none; updates it when it is still what
this installer last wrote apart from those two lines, keeping them; and otherwise leaves it alone
and says so. A stamp beside the copy holds the digest of what the installer last wrote, with the
site lines blanked.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import platformdirs
import yaml

NAME = "slurm"
SOURCE = Path(__file__).resolve().parents[2] / "profiles" / NAME / "config.yaml"
STAMP = ".curate-installed"
SITE_KEYS = ("partition", "account")
#: the file names Snakemake reads a profile folder's settings from (cli.get_profile_dir)
PROFILE_FILE = re.compile(r"(profile|config)(\.v\d+\+)?\.yaml")


def user_profile_dir(name: str = NAME) -> Path:
    """The folder Snakemake finds ``--profile <name>`` in for this user (Snakemake's own rule:
    platformdirs' user config dir, on Linux ``${XDG_CONFIG_HOME:-~/.config}/snakemake/<name>``)."""
    return Path(platformdirs.PlatformDirs("snakemake", "snakemake").user_config_dir) / name


def _site_line(key: str) -> re.Pattern:
    return re.compile(rf"^  {key}:.*$", re.M)


def site_lines(text: str) -> dict[str, str] | None:
    """The two site lines of a profile text, verbatim; None unless each occurs exactly once."""
    found = {}
    for key in SITE_KEYS:
        matches = _site_line(key).findall(text)
        if len(matches) != 1:
            return None
        found[key] = matches[0]
    return found


def site_values(text: str) -> dict[str, object]:
    """The values the site lines set (None: unset; a line YAML cannot read: the line itself)."""
    values = {}
    for key, line in (site_lines(text) or {}).items():
        try:
            values[key] = yaml.safe_load(line.strip())[key]
        except (yaml.YAMLError, TypeError, KeyError):
            values[key] = line
    return values


def with_site_lines(text: str, lines: dict[str, str]) -> str:
    for key, line in lines.items():
        text = _site_line(key).sub(lambda _: line, text, count=1)
    return text


def digest(text: str) -> str:
    """sha256 of a profile text with its site lines blanked: equal for copies that differ only
    in the site settings."""
    blank = with_site_lines(text, {key: f"  {key}: <site setting>" for key in SITE_KEYS})
    return hashlib.sha256(blank.encode()).hexdigest()


@dataclass
class Outcome:
    action: str  # installed | updated | current | kept
    path: Path
    message: str


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _unset_note(text: str) -> str:
    unset = [key for key, value in site_values(text).items() if value is None]
    if not unset:
        return ""
    return f"; {' and '.join(unset)} unset (the cluster's default): set them in its site lines where needed (cluster/README.md)"


def install(source: Path = SOURCE, directory: Path | None = None) -> Outcome:
    """Install or update the profile ``source`` into ``directory`` (default: where Snakemake
    looks the name up for this user) without ever losing an edit the user made."""
    directory = Path(directory) if directory is not None else user_profile_dir()
    new = Path(source).read_text()
    if site_lines(new) is None:
        raise ValueError(f"{source}: each of the site lines {SITE_KEYS} must occur exactly once")
    target, stamp = directory / "config.yaml", directory / STAMP
    others = (
        sorted(p.name for p in directory.glob("*.yaml") if PROFILE_FILE.fullmatch(p.name)) if directory.is_dir() else []
    )
    if others and others != ["config.yaml"]:
        return Outcome(
            "kept",
            directory,
            f"left {directory} alone: it already holds a profile ({', '.join(others)}) that setup did not install",
        )
    if not target.exists():
        directory.mkdir(parents=True, exist_ok=True)
        _write(target, new)
        _write(stamp, digest(new) + "\n")
        return Outcome("installed", target, f"installed the SLURM profile at {target}{_unset_note(new)}")
    current = target.read_text()
    mine = site_lines(current)
    recorded = stamp.read_text().strip() if stamp.is_file() else None
    if mine is not None and digest(current) == digest(new):
        if recorded != digest(new):  # the same text, put there by hand: adopt it
            _write(stamp, digest(new) + "\n")
        return Outcome("current", target, f"the SLURM profile at {target} is up to date{_unset_note(current)}")
    if mine is not None and recorded == digest(current):
        # what setup installed, apart from the site lines: this version, with the user's settings
        # (a line left unset takes the new version's, comment and all)
        values = site_values(current)
        kept = {key: line for key, line in mine.items() if values[key] is not None}
        updated = with_site_lines(new, kept)
        _write(target, updated)
        _write(stamp, digest(updated) + "\n")
        return Outcome(
            "updated",
            target,
            f"updated the SLURM profile at {target} to this checkout's version, its site settings kept{_unset_note(updated)}",
        )
    return Outcome(
        "kept",
        target,
        f"left the SLURM profile at {target} alone: it was edited beyond its two site lines, or not installed "
        f"by setup. Compare it with this checkout's version: diff {target} {Path(source).resolve()}",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=SOURCE, help="the profile in this checkout")
    parser.add_argument("--dir", type=Path, default=None, help="install into this folder (default: Snakemake's)")
    args = parser.parse_args(argv)
    try:
        outcome = install(args.source, args.dir)
    except OSError as error:  # a read-only home must not stop a local setup
        print(f"setup: WARNING: could not install the SLURM profile: {error}", file=sys.stderr)
        return 0
    print(f"setup: {outcome.message}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
