"""The papers' tables, declared in ``papers/<paper>.yaml``: loading, validation and the transcription check.

A paper file lists each table of a paper: its columns (metrics), its rows (a selection, pool,
recipe and suite each) and the numbers the paper reports, transcribed as printed. The structure
is described (and validated) by ``schemas/papers.schema.yaml``; this module adds the checks a
JSON schema cannot express and fills each row's pool/recipe/suite/needs from its table's
``defaults``.

The transcription check (:func:`check_transcription`) finds every row of a table in the paper's
seed text and verifies that each reported number is printed on the row's line, in column order,
formatted as the paper prints it (``decimals`` of the table or column; a cell whose print cannot be
reproduced from the number, e.g. an OCR-garbled "0 578", names its printed form in ``printed``).
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "papers.schema.yaml"
ID_PATTERN = re.compile(r"^[a-z0-9]+(?:[_-][a-z0-9]+)*$")
ROW_AXES = ("pool", "recipe", "suite")
LABEL_SEPARATOR = " | "


def _where(paper: str, table: str | None = None, row: str | None = None) -> str:
    where = f"paper {paper!r}"
    if table is not None:
        where += f", table {table!r}"
    if row is not None:
        where += f", row {row!r}"
    return where


def _schema() -> dict:
    return yaml.safe_load(SCHEMA_PATH.read_text())


def _validate_schema(doc, name: str) -> None:
    import jsonschema

    validator = jsonschema.Draft202012Validator(_schema())
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    if not errors:
        return
    error = errors[0]
    path = list(error.absolute_path)
    where = _where(name)
    if len(path) >= 2 and path[0] == "tables":
        table = doc["tables"][path[1]]
        where = _where(name, path[1])
        if len(path) >= 4 and path[2] == "rows" and isinstance(path[3], int):
            where = _where(name, path[1], table["rows"][path[3]].get("label", f"#{path[3]}"))
    location = "/".join(str(p) for p in path) or "(top level)"
    raise ValueError(f"{where}: {location}: {error.message}")


def _check_id(value: str, what: str, where: str) -> None:
    if not isinstance(value, str) or not ID_PATTERN.match(value):
        raise ValueError(f"{where}: {what} {value!r} is not a snake/kebab-case id")


def _cross_check(doc: dict, name: str) -> None:
    paper = doc["paper"]
    _check_id(paper, "paper", _where(name))
    numbers = {}
    for table_id, table in doc["tables"].items():
        where = _where(paper, table_id)
        _check_id(table_id, "table id", where)
        if table.get("number") is not None:
            if table["number"] in numbers:
                raise ValueError(f"{where}: number {table['number']} is also table {numbers[table['number']]!r}'s")
            numbers[table["number"]] = table_id
        keys = [column["key"] for column in table["columns"]]
        for column in table["columns"]:
            _check_id(column["key"], "column key", where)
            if keys.count(column["key"]) > 1:
                raise ValueError(f"{where}: column key {column['key']!r} appears twice")
            if "of" in column and column["of"] not in keys:
                raise ValueError(f"{where}: column {column['key']!r} is a drop of {column['of']!r}, not a column key")
        labels = set()
        defaults = table.get("defaults", {})
        for row in table["rows"]:
            label = row["label"]
            rwhere = _where(paper, table_id, label)
            if label in labels:
                raise ValueError(f"{rwhere}: row label appears twice in the table")
            labels.add(label)
            _check_id(row["selection"], "selection", rwhere)
            for axis in ROW_AXES:
                if axis not in row and axis not in defaults:
                    raise ValueError(f"{rwhere}: no {axis} (neither on the row nor in the table's defaults)")
            unknown = sorted(set(row["reported"]) - set(keys))
            if unknown:
                raise ValueError(f"{rwhere}: reported keys {unknown} are not column keys {keys}")
            if not any(value is not None for value in row["reported"].values()):
                raise ValueError(f"{rwhere}: reports no number")
            for key in row.get("printed", {}):
                if row["reported"].get(key) is None:
                    raise ValueError(f"{rwhere}: printed[{key!r}] has no reported number")
        if table["rows"][0].get("shares_line"):
            raise ValueError(_where(paper, table_id, table["rows"][0]["label"]) + ": the first row cannot share a line")


def _fill_defaults(doc: dict) -> None:
    for table in doc["tables"].values():
        defaults = table.get("defaults", {})
        for row in table["rows"]:
            for axis in ROW_AXES:
                row.setdefault(axis, defaults[axis] if axis in defaults else None)
            row["needs"] = list(dict.fromkeys(list(defaults.get("needs", [])) + list(row.get("needs", []))))
            row.setdefault("reproduce", defaults.get("reproduce", True))


def load_paper(path) -> dict:
    """Load and validate one ``papers/<paper>.yaml``; rows come back with pool/recipe/suite/needs filled.

    Raises ValueError naming the paper, table and row of the first problem.
    """
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ValueError(f"paper file {str(path)!r}: not valid YAML: {error}") from error
    name = doc.get("paper", path.stem) if isinstance(doc, dict) else path.stem
    _validate_schema(doc, name)
    if doc["paper"] != path.stem:
        raise ValueError(f"{_where(doc['paper'])}: declared in {path.name}; the file must be named {doc['paper']}.yaml")
    _cross_check(doc, name)
    _fill_defaults(doc)
    return doc


def load_papers(folder) -> dict[str, dict]:
    """Every ``*.yaml`` of a folder, by paper id, in file-name order."""
    papers = {}
    for path in sorted(Path(folder).glob("*.yaml")):
        doc = load_paper(path)
        papers[doc["paper"]] = doc
    return papers


def table_ids(papers: dict[str, dict]) -> list[tuple[str, str]]:
    """(paper, table) for every table, papers in the given order, tables in file order."""
    return [(paper, table) for paper, doc in papers.items() for table in doc["tables"]]


# ---------------------------------------------------------------------------------------------
# Transcription check against the seed text


def seed_path(doc: dict, roots) -> Path:
    """The paper's seed file: its ``source`` (``seeds/...``) under the first root that has it."""
    for root in roots:
        candidate = Path(root) / doc["source"]
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{_where(doc['paper'])}: {doc['source']} is under none of {[str(r) for r in roots]}")


_MARKUP = re.compile(r"</?u>|\*\*|\$")


def normalise(text: str) -> str:
    """Cell text for matching: no underline/bold/math markup, lower case, single spaces."""
    return " ".join(_MARKUP.sub("", text).lower().split())


def _cells(line: str) -> list[str]:
    return [cell for cell in (normalise(c) for c in line.split("\t")) if cell]


def formatted(value: float, decimals: int) -> str:
    return f"{value:.{decimals}f}"


def table_region(lines: list[str], locate: dict) -> list[int]:
    """Indices of the seed lines holding a table's body, found from its anchor.

    The body is ``blocks`` runs of non-blank lines ``below`` (or ``above``) the first line that
    contains ``anchor``, after skipping ``skip`` such runs.
    """
    anchor = locate["anchor"]
    starts = [i for i, line in enumerate(lines) if anchor in line]
    if not starts:
        raise LookupError(f"anchor {anchor!r} is not in the seed text")
    step = 1 if locate.get("direction", "below") == "below" else -1
    i = starts[0] + step
    runs = []
    for _ in range(locate.get("skip", 0) + locate.get("blocks", 1)):
        while 0 <= i < len(lines) and not lines[i].strip():
            i += step
        run = []
        while 0 <= i < len(lines) and lines[i].strip():
            run.append(i)
            i += step
        if not run:
            break
        runs.append(sorted(run))
    runs = runs[locate.get("skip", 0) :]
    if step < 0:
        runs.reverse()
    return [index for run in runs for index in run]


def _match_cells(row: dict) -> list[str]:
    if "match" in row:
        return [normalise(m) for m in row["match"]]
    return [normalise(part) for part in row["label"].split(LABEL_SEPARATOR)]


def _find_after(cells: list[str], wanted: list[str]) -> int | None:
    """Index after the longest suffix of ``wanted`` found as consecutive cells, or None."""
    for start in range(len(wanted)):
        suffix = wanted[start:]
        for i in range(len(cells) - len(suffix) + 1):
            if cells[i : i + len(suffix)] == suffix:
                return i + len(suffix)
    return None


def expected_prints(table: dict, row: dict) -> list[str]:
    """The printed form of each reported (non-null) number of a row, in column order."""
    prints = []
    for column in table["columns"]:
        value = row["reported"].get(column["key"])
        if value is None:
            continue
        if column["key"] in row.get("printed", {}):
            prints.append(row["printed"][column["key"]])
        else:
            prints.append(formatted(value, column.get("decimals", table["decimals"])))
    return prints


def _printed_in_order(text: str, prints: list[str]) -> bool:
    position = 0
    for printed in prints:
        found = re.compile(r"(?<![\w.\-])" + re.escape(printed) + r"(?![\w]|\.\d)").search(text, position)
        if found is None:
            return False
        position = found.end()
    return True


_NUMERIC_CELL = re.compile(r"^[-+(]?\d[\d.\s*()+-]*$")


def _is_data_line(line: str) -> bool:
    """A body line holding numbers in a cell of their own (header lines hold none)."""
    return any(_NUMERIC_CELL.match(cell) for cell in _cells(line))


def check_table(table: dict, lines: list[str], paper: str = "?", table_id: str = "?") -> list[str]:
    """Errors (empty if none) of one table's transcription against the seed text's lines.

    Rows are found in order: each on a line after the previous row's (on the same line when it
    ``shares_line``), showing the row's label cells (the longest suffix of its ``match`` or of its
    label's ``|``-separated parts) followed by its numbers as printed, in column order, on that line
    or within the table's ``window`` of following lines. Every body line with numbers must be some
    row's line, so a row left out is an error too.
    """
    try:
        region = table_region(lines, table["locate"])
    except LookupError as error:
        return [f"{_where(paper, table_id)}: {error}"]
    if not region:
        return [f"{_where(paper, table_id)}: no table body next to anchor {table['locate']['anchor']!r}"]
    window = table.get("window", 0)
    errors = []
    position = 0
    previous = None
    used = set()
    for row in table["rows"]:
        wanted = _match_cells(row)
        prints = expected_prints(table, row)
        start = previous if (row.get("shares_line") and previous is not None) else position
        found = None
        for k in range(start, len(region)):
            cells = _cells(lines[region[k]])
            after = _find_after(cells, wanted)
            if after is None:
                continue
            text = "\t".join(cells[after:] + [c for j in region[k + 1 : k + 1 + window] for c in _cells(lines[j])])
            if _printed_in_order(text, prints):
                found = k
                break
        if found is None:
            after_line = (
                f"seed line {region[start] + 1}" if start < len(region) else f"the table's last line ({region[-1] + 1})"
            )
            errors.append(
                f"{_where(paper, table_id, row['label'])}: no line from {after_line} on shows {wanted} followed by {prints}"
            )
            continue
        previous, position = found, found + 1
        used.add(found)
    for k, index in enumerate(region):
        if k not in used and _is_data_line(lines[index]):
            errors.append(
                f"{_where(paper, table_id)}: seed line {index + 1} is a row of the printed table that no row transcribes"
            )
    return errors


def check_transcription(doc: dict, seed_text: str) -> list[str]:
    """Errors (empty if none) of every table of a paper against its seed text."""
    lines = seed_text.splitlines()
    errors = []
    for table_id, table in doc["tables"].items():
        errors += check_table(table, lines, doc["paper"], table_id)
    return errors
