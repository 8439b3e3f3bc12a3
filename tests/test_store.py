import os
import signal
import subprocess
import sys

import pytest

from seal_lightning.cli import main
from seal_lightning.errors import SealError
from seal_lightning.store import RunStore

HOLDER = """
import sys, time
from seal_lightning.store import RunStore
with RunStore(sys.argv[1]).hold("fit"):
    print("held", flush=True)
    time.sleep(600)
"""


@pytest.fixture
def held_run(tmp_path):
    """A run directory held by another process, as a running `fit` holds it."""
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    yield tmp_path, holder
    holder.kill()
    holder.wait()


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


@pytest.mark.parametrize("name", ["../../x.json", "/tmp/x.json", "round_1/../../x.json"])
def test_no_name_leads_out_of_the_run_directory(tmp_path, name):
    store = RunStore(tmp_path / "run")
    with pytest.raises(SealError, match="would lead out of run_dir"):
        store.write_json(name, {"x": 1})
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["run"]


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


def test_a_second_writer_is_refused_naming_the_first(held_run):
    run_dir, holder = held_run
    in_use = f"run_dir {run_dir} is in use by process {holder.pid} on .* \\(fit, since"
    with pytest.raises(SealError, match=in_use), RunStore(run_dir).hold("evaluate"):
        pass


def test_a_command_on_a_held_run_exits_2_with_one_line(held_run, capsys):
    run_dir, holder = held_run
    assert main(["evaluate", f"run_dir={run_dir}", "data.heldout_limit=1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"is in use by process {holder.pid}" in err


def test_the_lock_of_a_killed_process_is_taken_over(held_run):
    run_dir, holder = held_run
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert "fit" in (run_dir / ".lock").read_text()  # left behind by the killed holder
    with RunStore(run_dir).hold("evaluate"):
        assert f"process {os.getpid()} " in (run_dir / ".lock").read_text()
    with RunStore(run_dir).hold("fit"):  # released on exit: the same process may take it again
        pass


WRITER_KILLED_MID_SAVE = """
import sys, time
from seal_lightning.store import RunStore
store = RunStore(sys.argv[1])
store.write_json("kept.json", [1])

def slow_save(folder):
    (folder / "model.safetensors").write_bytes(b"half a policy")
    print("saving", flush=True)
    time.sleep(600)

with store.hold("fit"):
    store.write_dir("round_1/policy", slow_save)
"""


def test_what_a_killed_writer_left_half_written_is_removed_by_the_next_holder(tmp_path):
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER_KILLED_MID_SAVE, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout.readline().strip() == "saving"
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    (staging,) = (tmp_path / "round_1").iterdir()
    assert (staging / "model.safetensors").is_file()
    with RunStore(tmp_path).hold("fit"):
        assert list((tmp_path / "round_1").iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "kept.json", "round_1"]


@pytest.fixture
def small_disk(tmp_path):
    """A real 64 KiB file system, so writes fail with the kernel's own 'No space left on device'."""
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({result.stderr.decode().strip() or 'not permitted'})")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_is_one_line_and_keeps_the_good_file(small_disk):
    store = RunStore(small_disk)
    store.write_json("summary.json", {"good": True})
    with pytest.raises(SealError, match=r"no space left on the device writing .*summary\.json; finished work is kept"):
        store.write_text("summary.json", "x" * 200_000)
    assert store.read_json("summary.json") == {"good": True}
    assert sorted(p.name for p in small_disk.iterdir()) == ["summary.json"]  # no temporary file left


def test_a_full_disk_during_a_folder_write_keeps_the_old_folder(small_disk):
    store = RunStore(small_disk)
    store.write_dir("policy", lambda folder: (folder / "w.txt").write_text("one"))
    with pytest.raises(SealError, match="no space left on the device writing"):
        store.write_dir("policy", lambda folder: (folder / "w.txt").write_text("two" * 100_000))
    assert (small_disk / "policy" / "w.txt").read_text() == "one"
    assert sorted(p.name for p in small_disk.iterdir()) == ["policy"]


def test_a_full_disk_during_an_append_loses_only_that_record(small_disk):
    store = RunStore(small_disk)
    store.append_jsonl("scores.jsonl", {"i": 0})
    with pytest.raises(SealError, match="no space left on the device writing"):
        store.append_jsonl("scores.jsonl", {"text": "x" * 200_000})
    store.append_jsonl("scores.jsonl", {"i": 1})
    assert store.read_jsonl("scores.jsonl") == [{"i": 0}, {"i": 1}]


def test_each_rank_appends_to_its_own_file_and_readers_merge_them(tmp_path):
    """Two ranks never append to one file; a reader under any number of ranks sees every rank's records."""
    main, second = RunStore(tmp_path), RunStore(tmp_path, rank=1)
    main.append_jsonl("round_1/scores.jsonl", {"unit": 0})
    second.append_jsonl("round_1/scores.jsonl", {"unit": 1})
    second.append_jsonl("round_1/scores.jsonl", {"unit": 2})
    RunStore(tmp_path, rank=12).append_jsonl("round_1/scores.jsonl", {"unit": 3})
    assert sorted(p.name for p in (tmp_path / "round_1").iterdir()) == [
        "scores.jsonl",
        "scores.rank1.jsonl",
        "scores.rank12.jsonl",
    ]
    expected = [{"unit": 0}, {"unit": 1}, {"unit": 2}, {"unit": 3}]
    assert main.read_jsonl("round_1/scores.jsonl") == expected
    assert second.read_jsonl("round_1/scores.jsonl") == expected


def test_only_the_main_rank_writes_shared_files(tmp_path):
    second = RunStore(tmp_path, rank=1)
    assert second.write_json("kept.json", [1]) == tmp_path / "kept.json"
    second.write_dir("policy", lambda folder: (folder / "weights").write_text("w"))
    assert not (tmp_path / "kept.json").exists() and not (tmp_path / "policy").exists()
    RunStore(tmp_path).write_json("kept.json", [1])
    assert second.read_json("kept.json") == [1]
