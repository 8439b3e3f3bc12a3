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
