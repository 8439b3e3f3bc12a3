import pytest

from seal_lightning.store import RunStore


def test_json_round_trip_and_no_temp_files_left(tmp_path):
    store = RunStore(tmp_path / "run")
    store.write_json("a/b.json", {"x": 1})
    assert store.read_json("a/b.json") == {"x": 1}
    assert store.read_json("missing.json") is None
    assert [p.name for p in (tmp_path / "run" / "a").iterdir()] == ["b.json"]


def test_jsonl_drops_a_line_cut_short_by_a_crash(tmp_path):
    store = RunStore(tmp_path)
    store.append_jsonl("s.jsonl", {"i": 0})
    store.append_jsonl("s.jsonl", {"i": 1})
    with store.path("s.jsonl").open("a") as handle:
        handle.write('{"i": 2')
    assert store.read_jsonl("s.jsonl") == [{"i": 0}, {"i": 1}]


@pytest.mark.parametrize("partial", ['{"i": 2', '{"text": "' + "é" * 5000])  # short, and longer than a block
def test_append_after_a_cut_line_keeps_the_next_record(tmp_path, partial):
    store = RunStore(tmp_path)
    store.append_jsonl("s.jsonl", {"i": 0})
    with store.path("s.jsonl").open("a", encoding="utf-8") as handle:
        handle.write(partial)  # a crash mid-append
    store.append_jsonl("s.jsonl", {"i": 3})
    store.append_jsonl("s.jsonl", {"i": 4})
    assert store.read_jsonl("s.jsonl") == [{"i": 0}, {"i": 3}, {"i": 4}]


def test_append_to_a_file_whose_only_line_was_cut(tmp_path):
    store = RunStore(tmp_path)
    store.path("s.jsonl").write_text('{"i": ')
    store.append_jsonl("s.jsonl", {"i": 1})
    assert store.path("s.jsonl").read_text() == '{"i": 1}\n'


def test_write_dir_replaces_only_when_the_writer_finishes(tmp_path):
    store = RunStore(tmp_path)
    store.write_dir("policy", lambda folder: (folder / "w.txt").write_text("one"))

    def failing(folder):
        (folder / "w.txt").write_text("two")
        raise RuntimeError("crash while saving")

    with pytest.raises(RuntimeError):
        store.write_dir("policy", failing)
    assert (tmp_path / "policy" / "w.txt").read_text() == "one"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["policy"]
