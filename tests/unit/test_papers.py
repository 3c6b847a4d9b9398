"""papers/*.yaml: schema and cross-checks, table inventory, and every reported number against the seed text."""

import copy
import os
from pathlib import Path

import pytest
import yaml

from curate.reporting.papers import check_table, check_transcription, load_paper, load_papers, seed_path, table_ids

ROOT = Path(__file__).resolve().parents[2]
PAPERS = ROOT / "papers"
# Where `source: seeds/<file>.txt` is looked up: $CURATE_SHARED, the checkout, its shared/, the shared folder beside it.
SHARED_ROOTS = [Path(p) for p in [os.environ.get("CURATE_SHARED", "")] if p] + [
    ROOT,
    ROOT / "shared",
    ROOT.parent / "shared",
]
PAPER_FILES = sorted(PAPERS.glob("*.yaml"))


@pytest.fixture(scope="module")
def papers():
    return load_papers(PAPERS)


def seed_text(doc):
    try:
        return seed_path(doc, SHARED_ROOTS).read_text(encoding="utf-8")
    except FileNotFoundError as error:
        pytest.skip(str(error))


# ---------------------------------------------------------------------------------------------
# Inventory


def test_the_four_papers_are_declared(papers):
    assert sorted(papers) == ["datacomp", "flyt", "mos", "sieve"]


@pytest.mark.parametrize(
    "paper, numbers",
    [("mos", [1, 2, 3, 4, 5]), ("sieve", [1, 2, 3, 4, 5]), ("flyt", [1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14, 15])],
)
def test_numbered_tables_are_those_the_issue_lists(papers, paper, numbers):
    tables = papers[paper]["tables"]
    assert sorted(t["number"] for t in tables.values()) == numbers
    assert sorted(tables) == sorted(f"table{n}" for n in numbers)


def test_datacomp_has_both_tracks_leaderboards_per_scale_the_dfn_and_the_captioning_tables(papers):
    tables = papers["datacomp"]["tables"]
    assert list(tables) == [
        "leaderboard_medium",
        "leaderboard_large",
        "leaderboard_xlarge",
        "dfn_table1",
        "byod_medium",
        "byod_large",
        "byod_xlarge",
        "captioning",
    ]
    for track in ("leaderboard", "byod"):
        for scale in ("medium", "large", "xlarge"):
            rows = tables[f"{track}_{scale}"]["rows"]
            assert {row["pool"] for row in rows} == {f"datacomp-{scale}"}
            assert {row["recipe"] for row in rows} == {f"datacomp-{scale}"}
    # a row that is not a selection of the pool says what it needs: external data, a method
    external = {row["label"]: row["needs"] for row in tables["byod_medium"]["rows"]}
    assert external["Baseline: CC12M"] == ["data:cc12m"]
    captioning = tables["captioning"]
    assert [c["kind"] for c in captioning["columns"] if "kind" in c] == ["property"] * 4
    assert all("method:synthetic-captions" in row["needs"] for row in captioning["rows"])


def test_table_ids_lists_every_table_in_order(papers):
    ids = table_ids(papers)
    assert ids[0] == ("datacomp", "leaderboard_medium")
    assert ("mos", "table4") in ids and ("flyt", "table14") in ids and ("sieve", "table5") in ids
    assert len(ids) == len(set(ids)) == sum(len(doc["tables"]) for doc in papers.values()) == 8 + 5 + 5 + 14


def test_rows_get_pool_recipe_suite_and_needs_from_defaults(papers):
    for paper, table in table_ids(papers):
        for row in papers[paper]["tables"][table]["rows"]:
            assert row["pool"] and row["recipe"] and row["suite"], (paper, table, row["label"])
            assert isinstance(row["needs"], list) and isinstance(row["reproduce"], bool)
    mos1 = papers["mos"]["tables"]["table1"]["rows"][0]
    assert (mos1["pool"], mos1["recipe"], mos1["suite"]) == ("cc3m", "mos-llava", "mos-llava")
    assert mos1["needs"] == ["method:sample-weighting", "scorer:openai-clip-b32"]


def test_the_same_method_shares_its_selection_across_papers(papers):
    by_selection = {}
    for paper, table in table_ids(papers):
        for row in papers[paper]["tables"][table]["rows"]:
            by_selection.setdefault(row["selection"], set()).add(paper)
    assert by_selection["sieve_clip_20"] == {"sieve", "datacomp"}
    assert by_selection["clip_score_l14_30"] == {"sieve", "datacomp"}
    assert by_selection["image_based_clip_score_l14_30"] == {"flyt", "datacomp"}
    assert by_selection["no_filter"] == {"mos", "sieve", "datacomp"}


# ---------------------------------------------------------------------------------------------
# Transcription: every reported number is printed on its row's line of the seed text


@pytest.mark.parametrize("path", PAPER_FILES, ids=[p.stem for p in PAPER_FILES])
def test_every_reported_number_is_printed_in_the_seed(path):
    doc = load_paper(path)
    assert check_transcription(doc, seed_text(doc)) == []


def test_a_wrong_number_in_a_real_table_is_caught(papers):
    doc = copy.deepcopy(papers["mos"])
    text = seed_text(doc)
    row = doc["tables"]["table2"]["rows"][2]
    assert row["label"] == "20% | CLIP Score | ViT-L/14" and row["reported"]["imagenet"] == 63.9
    row["reported"]["imagenet"] = 63.8
    errors = check_transcription(doc, text)
    assert errors and all("'table2'" in error for error in errors)
    assert "'20% | CLIP Score | ViT-L/14'" in errors[0] and "63.8" in errors[0]
    assert "seed line 153 is a row of the printed table that no row transcribes" in errors[1]


def test_a_wrong_precision_or_swapped_rows_are_caught(papers):
    doc = copy.deepcopy(papers["sieve"])
    text = seed_text(doc)
    table = doc["tables"]["table2"]
    table["decimals"] = 1  # the paper prints 23.00, not 23.0
    assert check_table(table, text.splitlines(), "sieve", "table2")
    table = doc["tables"]["table5"]
    table["rows"][4], table["rows"][5] = table["rows"][5], table["rows"][4]
    assert check_table(table, text.splitlines(), "sieve", "table5")


def test_a_garbled_cell_needs_its_printed_form(papers):
    doc = copy.deepcopy(papers["datacomp"])
    text = seed_text(doc)
    row = doc["tables"]["leaderboard_large"]["rows"][3]
    assert row["printed"] == {"imagenet": "0 578", "average": "0 529"}
    assert check_table(doc["tables"]["leaderboard_large"], text.splitlines()) == []
    del row["printed"]
    assert check_table(doc["tables"]["leaderboard_large"], text.splitlines())


SEED = """Some prose mentioning 0.401 and Table 1.

Method\tBase\tImageNet\tAverage
No filter\t-\t0.176\t<u>0.258</u>
CLIP score\tL/14\t0.273\t0.328
\tB/32\t0.260\t0.30
M-FLYT $\\alpha$ 0.1\t\t0.401\t0.377

Table 1: A toy table.
"""

TOY = {
    "caption": "toy",
    "scale": "medium",
    "unit": "fraction",
    "decimals": 3,
    "locate": {"anchor": "Table 1: A toy", "direction": "above"},
    "columns": [
        {"key": "imagenet", "label": "ImageNet", "metric": "imagenet_acc1"},
        {"key": "average", "label": "Average", "metric": "average"},
    ],
    "rows": [
        {"label": "No filter | -", "selection": "no_filter", "reported": {"imagenet": 0.176, "average": 0.258}},
        {
            "label": "CLIP score | L/14",
            "selection": "clip_score_l14_30",
            "reported": {"imagenet": 0.273, "average": 0.328},
        },
        {
            "label": "CLIP score | B/32",
            "selection": "clip_score_b32_30",
            "reported": {"imagenet": 0.26, "average": 0.3},
            "printed": {"average": "0.30"},
        },
        {"label": "M-FLYT $\\alpha$ 0.1", "selection": "mflyt", "reported": {"imagenet": 0.401, "average": None}},
    ],
}


def test_checker_accepts_the_toy_table():
    assert check_table(TOY, SEED.splitlines()) == []


@pytest.mark.parametrize(
    "mutate",
    [
        lambda t: t["rows"][1]["reported"].update(imagenet=0.237),  # a wrong digit
        lambda t: t["rows"][1]["reported"].update(imagenet=0.27),  # a lost digit: 0.270 is not printed
        lambda t: t["rows"][0]["reported"].update(imagenet=0.258, average=0.176),  # columns swapped
        lambda t: t["rows"][2].pop("printed"),  # 0.300 is not what is printed
        lambda t: t["rows"][3]["reported"].update(imagenet=0.4),  # 0.400 is not printed (0.401 is)
        lambda t: t["rows"][2].update(label="CLIP score | B/16"),  # no such row
        lambda t: t["rows"].reverse(),  # rows out of order
        lambda t: t["rows"].pop(1),  # a printed row left out
        lambda t: t["locate"].update(direction="below"),  # no table there
        lambda t: t["locate"].update(anchor="Table 9"),  # no such anchor
    ],
)
def test_checker_catches_a_wrong_transcription(mutate):
    table = copy.deepcopy(TOY)
    mutate(table)
    assert check_table(table, SEED.splitlines(), "toy", "table1")


def test_checker_error_names_the_paper_table_and_row():
    table = copy.deepcopy(TOY)
    table["rows"][1]["reported"]["average"] = 0.329
    error = check_table(table, SEED.splitlines(), "toy", "table1")[0]
    assert "'toy'" in error and "'table1'" in error and "'CLIP score | L/14'" in error and "0.329" in error


# ---------------------------------------------------------------------------------------------
# Validation errors name the paper, table and row


def _write(tmp_path, doc, name=None):
    path = tmp_path / f"{name or doc['paper']}.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False))
    return path


@pytest.fixture
def sieve_doc():
    return yaml.safe_load((PAPERS / "sieve.yaml").read_text())


@pytest.mark.parametrize(
    "mutate, message",
    [
        (
            lambda d: d["tables"]["table3"]["rows"][1]["reported"].update(avg=1.0),
            r"table3.*Sieve-GIT.*\['avg'\] are not column keys",
        ),
        (lambda d: d["tables"]["table4"]["rows"][1].update(label="CLIP"), r"table4.*'CLIP'.*twice"),
        (lambda d: d["tables"]["table5"]["rows"][0].update(selection="Sieve Caps1"), r"table5.*'1 \| 0.0'"),
        (lambda d: d["tables"]["table2"]["rows"][0].update(pool="datacomp-huge"), r"table2.*'10 \| BLIP-129M'"),
        (lambda d: d["tables"]["table2"]["rows"][0]["reported"].update(imagenet="23.00"), r"table2.*'10 \| BLIP-129M'"),
        (lambda d: d["tables"]["table1"]["rows"][0].pop("recipe"), r"table1.*No Filtering.*no recipe"),
        (lambda d: d["tables"]["table4"].pop("columns"), r"table4.*columns"),
        (lambda d: d["tables"]["table4"]["columns"][0].update(metric="imagenet_top1"), r"table4.*imagenet_top1"),
        (lambda d: d["tables"]["table4"].update(number=3), r"table4.*number 3"),
        (lambda d: d["tables"].update(Table6=d["tables"]["table5"]), r"Table6"),
        (lambda d: d["tables"]["table5"]["rows"][0].update(printed={"vtab": "1"}), r"table5.*printed\['vtab'\]"),
        (lambda d: d.update(extra=1), r"extra"),
    ],
)
def test_invalid_paper_raises_naming_where(tmp_path, sieve_doc, mutate, message):
    mutate(sieve_doc)
    with pytest.raises(ValueError, match=message):
        load_paper(_write(tmp_path, sieve_doc))


def test_file_must_be_named_after_its_paper(tmp_path, sieve_doc):
    with pytest.raises(ValueError, match="sieve.yaml"):
        load_paper(_write(tmp_path, sieve_doc, name="other"))
