"""Output folders: what a command may write over, and how a folder appears whole or not at all.

Every folder a command makes carries a marker file, `.distill-workbench.json`, that names its kind
(a trained student, a label set, a teacher, a bundle, a search). A command replaces only a folder
that carries its own kind's marker; a non-empty folder without one, a folder of another kind, or a
file in the way is a one-line error, with or without --overwrite. Nothing the tool did not make is
ever deleted.

    out = Path("exports/bilstm")
    state = check_output(out, "bundle")          # "absent" | "empty" | "ours", or a DistillError
    with staged(out, "bundle") as tmp:           # build in a temporary sibling folder ...
        (tmp / "model.onnx").write_bytes(...)    # ... which replaces `out` in one rename at the end
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

from distill.errors import DistillError
from distill.io import atomic_write_json, replace_dir

MARKER = ".distill-workbench.json"
KINDS = {
    "run": "a trained student (distill.train or distill.compress)",
    "label-set": "a label set (distill.label)",
    "teacher": "a fine-tuned teacher (distill.finetune)",
    "bundle": "an export bundle (distill.export)",
    "search": "a search (search.run)",
}


def kind_of(path: Path) -> str | None:
    """The kind a folder's marker names, or None when it has no readable marker."""
    try:
        return json.loads((Path(path) / MARKER).read_text(encoding="utf-8")).get("kind")
    except (OSError, ValueError, AttributeError):
        return None


def write_marker(directory: Path, kind: str) -> None:
    atomic_write_json(Path(directory) / MARKER, {"kind": kind, "tool": "distill-workbench"})


def _writable_parent(out: Path, flag: str) -> None:
    parent = out.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise DistillError(f"{flag} {out}: {parent} is a file, so no folder can be made there; choose another path")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise DistillError(f"{flag} {out}: {parent} is not writable; choose a folder you can write to")


def check_output(out: Path, kind: str, flag: str = "--output-dir") -> str:
    """What `out` is: "absent", "empty" or "ours" (a folder of this kind); raises for anything else."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DistillError(f"{flag} {out} is a file, not a folder; choose another path (the file is left alone)")
    if not out.exists():
        _writable_parent(out, flag)
        return "absent"
    if not os.access(out, os.W_OK | os.X_OK):
        raise DistillError(f"{flag} {out} is not writable; choose a folder you can write to")
    if not any(out.iterdir()):
        return "empty"
    found = kind_of(out)
    if found == kind:
        return "ours"
    if found in KINDS:
        raise DistillError(f"{flag} {out} holds {KINDS[found]}, not {KINDS[kind]}; choose another folder")
    raise DistillError(f"{flag} {out} is not empty and was not made by distill-workbench (no {MARKER}); "
                       "nothing in it is touched: choose another folder, or empty it yourself")


def clear_output(out: Path, kind: str) -> None:
    """Delete `out` if it is a folder of this kind (check_output said "ours"); anything else stays."""
    if out.is_dir() and kind_of(out) == kind:
        shutil.rmtree(out)


def begin_output(out: Path, kind: str) -> None:
    """Make `out` (absent or empty) a folder of this kind, to be written in place."""
    out.mkdir(parents=True, exist_ok=True)
    write_marker(out, kind)


def lock_path(out: Path) -> Path:
    """The lock file of an output folder: a hidden sibling, `.NAME.lock`."""
    out = Path(out).absolute()
    return out.parent / f".{out.name}.lock"


@contextmanager
def hold_lock(out: Path, flag: str = "--output-dir"):
    """Hold an exclusive lock on the output folder `out` for the block (fcntl.flock on `.NAME.lock`
    beside it, which holds the holder's PID). A second holder is refused at once with one line naming
    the folder and the PID. The lock file is the tool's own and is removed when the block ends."""
    out = Path(out)
    path = lock_path(out)
    made = []  # parent folders made for the lock file, removed again at the end if still empty
    parent = path.parent
    while not parent.exists():
        made.append(parent)
        parent = parent.parent
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise DistillError(f"{flag} {out}: cannot make its lock file {path} ({e.strerror}); "
                               "choose a folder you can write to") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            try:
                pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            finally:
                os.close(fd)
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                raise DistillError(f"{flag} {out}: cannot lock {path} ({e.strerror})") from None
            raise DistillError(f"{flag} {out} is in use by another run (PID {pid}, lock {path}); wait for it "
                               "to finish, or choose another folder") from None
        try:  # the file may have been removed by the holder that just finished: lock the one on disk
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield path
    finally:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        os.close(fd)
        for d in made:
            try:
                d.rmdir()
            except OSError:  # no longer empty: the run's output is in it
                break


def discard_fresh(out: Path, kind: str, state: str) -> None:
    """Undo a fresh run's folder after it failed: removed if the run made it (`state` "absent", what
    check_output said before), emptied if it was an empty folder; a folder of another kind is left alone."""
    out = Path(out)
    if kind_of(out) != kind:
        return
    if state == "absent":
        shutil.rmtree(out, ignore_errors=True)
        return
    for child in out.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def remove_stale_temporaries(out: Path) -> None:
    """Temporary siblings of `out` left by killed processes (named .NAME.tmp-PID, the PID gone)."""
    for tmp in out.parent.glob(f".{out.name}.tmp-*"):
        pid = tmp.name.rsplit("-", 1)[-1]
        if not pid.isdigit() or not tmp.is_dir():
            continue
        try:
            os.kill(int(pid), 0)  # signal 0 only asks whether the process exists
        except ProcessLookupError:
            shutil.rmtree(tmp, ignore_errors=True)
        except PermissionError:  # someone else's live process
            pass


@contextmanager
def staged(out: Path, kind: str):
    """Yield a fresh temporary folder beside `out`; when the block succeeds it gets the marker and
    replaces `out` (absent, empty, or of this kind) in one rename; when it fails it is deleted."""
    out = Path(out)
    if check_output(out, kind) == "empty":
        out.rmdir()
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        write_marker(tmp, kind)
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def flag_defaults(args_class) -> dict:
    """The defaults of a command's flags (its args dataclass): what a run made before a flag existed used."""
    import dataclasses

    return {f.name: f.default for f in dataclasses.fields(args_class) if f.default is not dataclasses.MISSING}


def resumable_output(out: Path, kind: str, record: str, identity: dict, resume: bool, overwrite: bool,
                     held=lambda saved: "a run", defaults: dict | None = None) -> dict | None:
    """For commands that write in place and resume (train, finetune): the saved record (out/record,
    whose "args" are the run's flags) of the run to resume, or None when the run starts afresh.

    Refuses what check_output refuses, a run of this kind when neither --resume nor --overwrite is
    given (`held(saved)` says what is there), and a resume with other flags (naming the first). A flag the
    saved run does not record (made by a version without it) counts as its default in `defaults`."""
    state = check_output(out, kind)
    if state in ("absent", "empty"):
        if resume:
            print(f"nothing to resume in {out}; starting a new run")
        return None
    if overwrite:
        return None  # the caller clears it once the work is about to start
    path = out / record
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        if resume:
            print(f"{out} holds no finished step of a run yet; starting it again")
            return None
        raise DistillError(f"--output-dir {out} holds an unfinished run that saved nothing yet; pass "
                           "--resume to start it again, or --overwrite") from None
    if not resume:
        raise DistillError(f"--output-dir {out} already holds {held(saved)}; pass --resume to continue "
                           "it, --overwrite to replace it, or choose another --output-dir")
    old = {**(defaults or {}), **saved.get("args", {})}
    diff = [k for k in identity if old.get(k) != identity[k]]
    if diff:
        k = diff[0]
        raise DistillError(f"--output-dir {out} holds a different run (--{k.replace('_', '-')} was "
                           f"{old.get(k)!r}, now {identity[k]!r}); use another --output-dir or --overwrite")
    return saved
