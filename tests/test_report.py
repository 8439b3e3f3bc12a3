import pytest

from seal_lightning.errors import SealError
from seal_lightning.report import compare_results, format_per_item, format_steps, format_table, summarize


def record(condition, item, value):
    return {"condition": condition, "item": item, "title": item.upper(), "f1": value, "selfedits": []}


def test_summarize_and_format():
    records = [record("no_update", "a", 0.0), record("no_update", "b", 1.0), record("passage", "a", 1.0)]
    table = summarize(records, ["f1"])
    assert table["no_update"]["f1"] == (0.5, 0.5)
    text = format_table(table, ["f1"])
    assert "0.500 ± 0.500" in text and text.splitlines()[0].split() == ["condition", "f1"]
    per_item = format_per_item(records, ["f1"]).splitlines()
    assert per_item[0].split() == ["f1", "per", "item", "no_update", "passage"]
    assert per_item[2].split() == ["B", "1.000"]


def test_per_item_columns_stay_apart_for_long_condition_names():
    long = "policy_selfedit_base_long"
    records = [record("passage_selfedit", "a", -6.174), record(long, "a", -5.461)]
    header, row = format_per_item(records, ["f1"]).splitlines()
    assert header.split() == ["f1", "per", "item", "passage_selfedit", long]
    assert row.split() == ["A", "-6.174", "-5.461"]
    assert header.index(long) + len(long) == len(row)  # values end under their column's name


def test_compare_pairs_rows_by_item_and_leaves_out_unpaired_ones():
    first = [record("passage", "a", 0.2), record("passage", "b", 0.4), record("passage", "c", 0.9)]
    second = [record("passage", "a", 0.3), record("passage", "b", 0.5), record("no_update", "a", 0.0)]
    lines = compare_results(first, second, resamples=1000).splitlines()
    (row,) = [line for line in lines if line.startswith("passage")]
    # Items a and b only: +0.1 each, so the interval is exactly +0.1, and it excludes zero (*).
    assert row.split() == ["passage", "f1", "0.300", "0.400", "+0.100", "[+0.100,", "+0.100]", "*", "2"]
    assert not any(line.startswith("no_update") for line in lines)


def test_steps_pair_each_row_with_the_row_above_it():
    records = [
        record("no_update", "a", 0.1),
        record("no_update", "b", 0.3),
        record("passage", "a", 0.4),
        record("passage", "b", 0.6),
        record("policy_selfedit", "a", 0.4),
    ]
    header, first, second, note = format_steps(records, ["f1"], resamples=1000).splitlines()
    assert header.split()[:3] == ["row", "-", "row"]
    # passage - no_update: +0.3 on both items; policy_selfedit - passage: item a only, +0.0.
    assert first.split() == [
        "passage",
        "-",
        "no_update",
        "f1",
        "0.200",
        "0.500",
        "+0.300",
        "[+0.300,",
        "+0.300]",
        "*",
        "2",
    ]
    assert second.split() == [
        "policy_selfedit",
        "-",
        "passage",
        "f1",
        "0.400",
        "0.400",
        "+0.000",
        "[+0.000,",
        "+0.000]",
        "1",
    ]
    assert note.startswith("paired by item")
    assert format_steps([record("no_update", "a", 0.1)], ["f1"], resamples=10) == ""


def test_compare_needs_shared_items():
    with pytest.raises(SealError, match="share no"):
        compare_results([record("passage", "a", 0.2)], [record("passage", "z", 0.2)], resamples=10)
