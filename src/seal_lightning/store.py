"""The run directory: atomic writes, what is finished, and resume.

Every finished piece of work (a sampled E-step, one inner-loop score, a round's policy) is written
as soon as it completes, by rename or by an fsynced JSONL line, so that a crash loses at most the
piece in flight and running the same command again continues where it stopped.

Under data-parallel ranks no two processes write one file: each rank appends to its own JSONL files
(rank 1's `scores.rank1.jsonl` beside the main rank's `scores.jsonl`) and readers merge them all, so a
run resumes under any number of ranks. Files every rank holds the same content of (gathered results, the
policy) are written by the main rank alone, as Lightning saves checkpoints on rank zero.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from seal_lightning.errors import SealError

# Writes in flight go to a file or folder named so beside their target, renamed into place when complete.
PARTIAL = ".partial-"


class RunStore:
    def __init__(self, run_dir: str | Path, rank: int = 0) -> None:
        self.root = Path(run_dir)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a file in the way, a read-only place: the config names a folder it cannot have
            reason = "it is a file" if self.root.is_file() else f"{exc.strerror}: {exc.filename}"
            raise SealError(f"run_dir {self.root} cannot be made a folder: {reason}") from None
        self.rank = rank

    @property
    def main(self) -> bool:
        """Whether this process writes the shared files (the other ranks hold the same content)."""
        return self.rank == 0

    def own(self, name: str) -> str:
        """The JSONL file this rank appends to for `name`: `name` itself on the main rank (and in a one-rank
        run), `stem.rankN.jsonl` beside it on rank N."""
        if self.main:
            return name
        relative = Path(name)
        return str(relative.with_name(f"{relative.stem}.rank{self.rank}{relative.suffix}"))

    def path(self, name: str) -> Path:
        """`name` inside the run directory; a name that would lead out of it (absolute, or through `..`)
        is refused, whatever wrote it (a config value, an experiment name, model-written text)."""
        relative = Path(name)
        if relative.is_absolute() or ".." in relative.parts:
            raise SealError(f"{name!r} would lead out of run_dir {self.root}; nothing was written there")
        return self.root / relative

    @contextmanager
    def hold(self, command: str) -> Iterator[None]:
        """One writer per run directory: two processes appending to the same files would duplicate and
        interleave work. The lock is the kernel's (flock), so a killed holder's lock is free at once; its
        file stays behind only to name the holder. What a killed holder was writing is removed (a merged
        policy's staging folder is as large as the policy)."""
        with self.path(".lock").open("a+", encoding="utf-8") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                raise SealError(
                    f"run_dir {self.root} is in use by {holder}; wait for it to finish or use another run_dir"
                ) from None
            handle.seek(0)
            handle.truncate()
            started = time.strftime("%Y-%m-%d %H:%M:%S")
            handle.write(f"process {os.getpid()} on {socket.gethostname()} ({command}, since {started})\n")
            handle.flush()
            self.remove_partial_writes()
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def remove_partial_writes(self) -> None:
        """Files and folders a writer left unfinished when it was killed; only call while holding the run."""
        for partial in sorted(self.root.rglob(f"{PARTIAL}*"), reverse=True):
            if partial.is_dir() and not partial.is_symlink():
                shutil.rmtree(partial)
            else:
                partial.unlink(missing_ok=True)

    def write_text(self, name: str, text: str, own: bool = False) -> Path:
        """Write to a temporary file beside the target, then rename: readers see all or nothing. What every
        rank holds is written by the main rank only (the path is returned on every rank); `own`: this rank
        alone computed it (its share of the work), so it writes it whatever its rank."""
        target = self.path(name)
        if not (self.main or own):
            return target
        with _disk_full_is_one_line(target):
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f"{PARTIAL}{target.name}.")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(text)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        return target

    def write_json(self, name: str, obj: Any, own: bool = False) -> Path:
        return self.write_text(name, json.dumps(obj, indent=2, ensure_ascii=False) + "\n", own)

    def read_json(self, name: str) -> Any:
        target = self.path(name)
        if not target.is_file():
            return None
        try:
            return json.loads(target.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise SealError(f"{target} is corrupt ({exc}); delete it to redo that step") from None

    def append_jsonl(self, name: str, record: dict[str, Any]) -> None:
        """Append one line to this rank's file; a line a crash cut short is cut off first, or the new record
        would be glued to it."""
        target = self.path(self.own(name))
        with _disk_full_is_one_line(target):
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("a+b") as handle:
                _drop_partial_line(handle)
                handle.write((json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))
                handle.flush()
                os.fsync(handle.fileno())

    def read_jsonl(self, name: str) -> list[dict[str, Any]]:
        """All complete records of every rank's file (`name` first, then by rank); a line cut short by a
        crash is dropped, as its work was not finished."""
        target = self.path(name)
        ranked = sorted(target.parent.glob(f"{target.stem}.rank*{target.suffix}"), key=_rank_of)
        records = []
        for file in [target, *ranked]:
            if not file.is_file():
                continue
            # Split at "\n" only: splitlines() also breaks at U+2028 and U+0085, which JSON strings hold raw.
            for line in file.read_text(encoding="utf-8").split("\n"):
                if not line:
                    continue
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return records

    def write_dir(self, name: str, writer: Callable[[Path], None]) -> Path:
        """Let `writer` fill a staging folder, then rename it into place (on the main rank only)."""
        target = self.path(name)
        if not self.main:
            return target
        with _disk_full_is_one_line(target):
            target.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f"{PARTIAL}{target.name}."))
            try:
                writer(staging)
                if target.exists():
                    shutil.rmtree(target)
                staging.rename(target)
            finally:
                if staging.exists():
                    shutil.rmtree(staging)
        return target


def _rank_of(file: Path) -> int:
    """The rank in a per-rank file's name (`scores.rank12.jsonl`: 12); -1 when it names none."""
    marker = file.stem.rpartition(".rank")[2]
    return int(marker) if marker.isdigit() else -1


def _drop_partial_line(handle: BinaryIO, block: int = 4096) -> None:
    """Truncate an append handle's file after its last newline: the unfinished record after it is lost work."""
    end = handle.seek(0, os.SEEK_END)
    position = end
    while position > 0:
        start = max(0, position - block)
        handle.seek(start)
        chunk = handle.read(position - start)
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            position = start + newline + 1
            break
        position = start
    if position < end:
        handle.truncate(position)


@contextmanager
def _disk_full_is_one_line(target: Path) -> Iterator[None]:
    """A full disk ends the command with one line; the write in flight left nothing in place of good work.
    Safetensors reports it as its own error type, so its text is checked too."""
    try:
        yield
    except Exception as exc:
        full = isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
        if not (full or "No space left on device" in str(exc) or "StorageFull" in str(exc)):
            raise
        raise SealError(
            f"no space left on the device writing {target}; finished work is kept: free space and run the same "
            "command again"
        ) from None
