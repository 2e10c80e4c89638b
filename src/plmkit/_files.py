"""Everything plmkit writes goes through here: ownership, one writer per folder, atomic replacement.

The promise (README "Your files are safe", SECURITY.md): plmkit deletes or replaces only what it
wrote itself, never writes over one of a command's inputs, lets one command at a time write into a
folder, and leaves either the previous result or the complete new one — never half of either.

* **Ownership.** Every output folder plmkit creates holds a small marker, ``.plmkit-output.json``:
  the kind of output (``tokenizer``, ``prepared-corpus``, ``model``, ``run``, ``demo``, …), the
  plmkit version and command, and the top-level entries it wrote. ``--overwrite`` replaces only a
  folder whose marker names the same kind and which holds nothing beyond those entries; anything
  else is refused with a few of the names found. A file output (``embed``'s vectors) is replaced
  only when its writer recognises it as its own format (``is_ours``).
* **Outputs are never inputs.** :func:`check_not_an_input` refuses an output that is one of the
  command's inputs, lies inside an input folder, contains an input, or lies inside a run's
  ``checkpoints/``, after resolving symbolic links.
* **One writer per folder.** A writer holds an exclusive ``fcntl.flock`` for as long as it runs
  (the kernel releases it after ``kill -9``). A folder written in place (a training run) is locked
  through ``.plmkit-lock`` inside it; an output built beside its target is locked through
  ``.NAME.plmkit-lock`` next to it; both are removed at the end. A second command fails at once and names the
  process (pid, host, command, start) that holds the folder.
* **Atomic replacement.** :func:`output_dir` and :func:`output_files` yield temporary paths next to
  the target; only once the command has finished are they swapped in (an atomic exchange where the
  kernel has ``renameat2``), and the old result removed. On any failure, the temporary paths are
  removed and the old result is as it was. Leftovers of a killed writer (``.NAME.plmkit-tmp-*``) are
  removed by the next writer of the same output, which holds the lock and so knows nobody uses them.
* **In-place runs.** :func:`run_folder` locks a training run's folder and, when the command fails
  before it has saved anything worth resuming, removes what it created, so the corrected rerun is
  not refused.

Output files and folders get the permissions the user's umask asks for (:func:`as_created`):
``tempfile.mkstemp``/``mkdtemp`` create them 0600/0700 whatever the umask.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime
import errno
import fcntl
import json
import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

from .errors import UsageError

MARKER = ".plmkit-output.json"
LOCK = ".plmkit-lock"  # inside a folder written in place (a run)
LOCK_SUFFIX = ".plmkit-lock"  # ".NAME.plmkit-lock" beside an output built next to its target
TMP_TAG = ".plmkit-tmp-"
OLD_TAG = ".plmkit-old-"
_SELF = {MARKER, LOCK}


def own_name(name: str) -> bool:
    """Whether ``name`` in a folder is plmkit's own bookkeeping: the marker, the lock, or the marker's
    temporary file while it is being replaced (another process — a second rank — may list the folder at
    that instant; it must not count as somebody's file)."""
    return name in _SELF or (name.startswith(f".{MARKER}.") and name.endswith(".tmp"))

# Folders (resolved) this process is writing: an output nested inside one of them is allowed (the demo
# writes its tokenizer, corpus and runs inside its own folder), inside anyone else's it is not.
_HELD: set[Path] = set()


# ------------------------------------------------------------------------------------------ basics
def umask() -> int:
    """The process umask, read without changing it where Linux reports it (no race with other threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def as_created(path: str | os.PathLike, directory: bool = False) -> None:
    """Give ``path`` (made by mkstemp / mkdtemp) the mode a plain ``open`` / ``mkdir`` would have given it."""
    os.chmod(path, (0o777 if directory else 0o666) & ~umask())


def real(path: str | os.PathLike) -> Path:
    """``path`` made absolute with every symbolic link resolved (the path need not exist)."""
    return Path(os.path.realpath(os.path.abspath(os.fspath(path))))


def _within(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def _names(folder: Path, limit: int = 4) -> str:
    try:
        names = sorted(p.name for p in folder.iterdir() if not own_name(p.name))
    except OSError:
        return ""
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Write one file by ``write(tmp_name)`` under a temporary name beside it, fsync, rename into place.

    The one atomic-file helper of the package (model weights, configs, JSON results, trainer state).
    A crash or a full disk leaves the previous file (or none) and no temporary file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        as_created(tmp)  # mkstemp (and safetensors) create 0600 files; give it the umask's mode
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json_atomic(path: str | os.PathLike, data) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2)

    atomic_write(path, write)


def read_text_lines(file: str | os.PathLike, what: str, fix: str = "restore it from the model's source") -> list[str]:
    """The lines (without line ends) of a UTF-8 vocabulary or word-list file of a model or tokenizer folder.

    A byte that is not UTF-8, or a NUL byte (a binary file), is a CheckpointError naming the file and line.
    """
    from .errors import CheckpointError

    file = Path(file)
    raw = file.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise CheckpointError(f"{file}, line {line}: not UTF-8 text (byte {raw[e.start:e.start + 1]!r}: {e.reason}); "
                              f"a {what} is UTF-8 text — {fix}") from None
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise CheckpointError(f"{file}, line {line}: a NUL byte; this is not a {what} (it may be binary) — {fix}")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


# ------------------------------------------------------------------------------------------ markers
def read_marker(folder: str | os.PathLike) -> dict | None:
    """The ownership marker of ``folder`` (None when there is none or it is unreadable)."""
    try:
        data = json.loads((Path(folder) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("kind"), str) else None


def write_marker(folder: str | os.PathLike, kind: str, entries: Iterable[str] | None = None) -> None:
    """Mark ``folder`` as a plmkit output of ``kind`` holding ``entries`` (default: what it holds now)."""
    from ._version import __version__

    folder = Path(folder)
    if entries is None:
        entries = [p.name for p in folder.iterdir() if not own_name(p.name)]
    write_json_atomic(folder / MARKER, {
        "kind": kind, "plmkit": __version__, "command": _command(),
        "written": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "entries": sorted(set(entries))})


def record_entries(folder: str | os.PathLike, names: Iterable[str]) -> None:
    """Add ``names`` to the entries ``folder``'s marker says plmkit wrote."""
    marker = read_marker(folder)
    if marker is None:
        return
    known = marker.get("entries") if isinstance(marker.get("entries"), list) else []
    if not set(names) <= set(known):  # unchanged markers are not rewritten (a refused command changes nothing)
        write_marker(folder, marker["kind"], list(known) + list(names))


def owned(folder: str | os.PathLike, kind: str) -> tuple[bool, str]:
    """(True, "") when ``folder`` is a plmkit output of ``kind`` holding only what plmkit wrote, else (False, why)."""
    folder = Path(folder)
    marker = read_marker(folder)
    if marker is None:
        found = _names(folder)
        return False, f"it has no plmkit marker ({MARKER}), so plmkit did not write it" + (
            f"; it holds {found}" if found else "")
    if marker["kind"] != kind:
        return False, f"it is a plmkit {marker['kind']}, not a {kind}"
    entries = marker.get("entries")
    known = set(entries) if isinstance(entries, list) else set()
    extra = sorted(p.name for p in folder.iterdir() if not own_name(p.name) and p.name not in known)
    if extra:
        more = f" and {len(extra) - 4} more" if len(extra) > 4 else ""
        return False, f"it holds files plmkit did not write there ({', '.join(extra[:4])}{more}); move them out first"
    return True, ""


# ------------------------------------------------------------------------------------------ locks
def _command() -> str:
    cmd = " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))
    return cmd if len(cmd) <= 160 else cmd[:157] + "..."


class _Lock:
    """An exclusive ``flock`` on ``path`` (created if needed) that says who holds it."""

    def __init__(self, path: Path, target: Path, remove: bool):
        self.path, self.target, self.remove = path, target, remove
        self.fd: int | None = None

    def acquire(self) -> "_Lock":
        for _ in range(5):
            created = False
            try:
                try:
                    fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
                    created = True
                except FileExistsError:
                    fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
            except OSError as e:
                raise UsageError(f"cannot write into {self.path.parent} ({e.strerror or e}); choose a writable --out") \
                    from None
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as e:
                    if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                        raise
                    created = False  # the file is the holder's
                    raise UsageError(f"{self.target} is being written by another plmkit process ({_read_holder(fd)}); "
                                     "wait for it to finish (or stop it), or choose another --out") from None
                try:  # the holder before us may have removed the file we opened: lock the one that is there
                    same = os.path.samestat(os.fstat(fd), os.stat(self.path))
                except FileNotFoundError:
                    same = False
                if not same:
                    os.close(fd)
                    continue
                info = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "command": _command(),
                                   "since": datetime.datetime.now().isoformat(timespec="seconds")})
                os.ftruncate(fd, 0)
                os.pwrite(fd, info.encode("utf-8"), 0)
                self.fd = fd
                return self
            except BaseException:  # an error or an interrupt before we held it: leave no lock file of ours
                if created:
                    with contextlib.suppress(OSError):
                        os.unlink(self.path)
                with contextlib.suppress(OSError):
                    os.close(fd)
                raise
        raise UsageError(f"could not lock {self.target}: its lock file {self.path} keeps changing; try again")

    def release(self) -> None:
        if self.fd is None:
            return
        if self.remove:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
        os.close(self.fd)  # releases the flock
        self.fd = None


def _read_holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
        return f"pid {info['pid']} on {info['host']}, '{info['command']}', since {info['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "its process id is not recorded"


def busy(folder: Path) -> str | None:
    """Who holds ``folder``'s in-place lock, when another process holds it (None when free or ours)."""
    lock = folder / LOCK
    if real(folder) in _HELD or not lock.is_file():
        return None
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return _read_holder(fd)
    finally:
        os.close(fd)
    return None


# ------------------------------------------------------------------------------------------ checks
def check_not_an_input(out: str | os.PathLike, inputs: Iterable[str | os.PathLike | None],
                       option: str = "--out") -> None:
    """Refuse an output that is an input, lies inside an input folder or contains an input (links resolved),
    or lies inside a run's checkpoints or a folder another plmkit process is writing."""
    o = real(out)
    for given in inputs:
        if given is None or str(given) in ("", "-"):
            continue
        i = real(given)
        if o == i:
            raise UsageError(f"{option} {out} is also an input of this command ({given}); choose another {option} "
                             "(plmkit never writes over its inputs; nothing was changed)")
        if i.is_dir() and _within(o, i):
            raise UsageError(f"{option} {out} lies inside the input folder {given}; choose a {option} outside it "
                             "(plmkit never writes into its inputs; nothing was changed)")
        if _within(i, o):
            raise UsageError(f"{option} {out} contains the input {given}; choose a {option} that does not hold this "
                             "command's inputs (nothing was changed)")
    for anc in o.parents:
        if anc.name == "checkpoints" and (read_marker(anc.parent) is not None or (anc.parent / "run.json").exists()):
            raise UsageError(f"{option} {out} lies inside the checkpoints of the run {anc.parent}; those are the "
                             f"run's own files — choose a {option} outside them (nothing was changed)")
        holder = busy(anc)
        if holder:
            raise UsageError(f"{option} {out} lies inside {anc}, which another plmkit process is writing ({holder}); "
                             f"choose a {option} outside it, or wait for it to finish")


def check_replaceable(out: str | os.PathLike, kind: str, what: str, overwrite: bool, shown: str | None = None,
                      option: str = "--out", asked: bool = True) -> None:
    """Fail fast unless ``out`` is new, an empty folder, or (with ``overwrite``) a plmkit ``kind`` output.

    ``asked``: the user passed ``--overwrite`` (else the command replaces its own earlier output by itself).
    """
    shown = str(out) if shown is None else shown
    out = real(out)
    if not (out.exists() or out.is_symlink()):
        return
    if not out.is_dir():
        raise UsageError(f"output {shown} exists and is not a folder; choose another {option}")
    if not any(p.name != LOCK for p in out.iterdir()):
        return  # an empty folder may be written into
    if not overwrite:
        raise UsageError(f"output folder {shown} already exists; pass --overwrite to replace it, or choose another "
                         f"{option}")
    ok, why = owned(out, kind)
    if not ok and not asked:  # the command replaces its own earlier output by itself (data fetch --dir)
        raise UsageError(f"{option} {shown} is not empty and is not a {what} written by plmkit ({why}); nothing was "
                         f"changed — choose a new or empty {option}")
    if not ok:
        raise UsageError(f"--overwrite refuses to replace {shown}: it is not a {what} written by plmkit ({why}); "
                         f"nothing was changed — choose another {option} or remove it yourself")


def check_output_dir(out: str | os.PathLike, kind: str, what: str, overwrite: bool = False,
                     inputs: Iterable[str | os.PathLike | None] = (), option: str = "--out", asked: bool = True) -> None:
    """Fail fast, before any work, unless :func:`output_dir` may write ``out`` (see there)."""
    check_not_an_input(out, inputs, option)
    check_replaceable(out, kind, what, overwrite, str(out), option, asked)


def _clean_stale(parent: Path, name: str, target: Path) -> None:
    """Remove what a killed writer of ``target`` left beside it (we hold its lock); restore a result it had moved."""
    try:
        leftovers = [p for p in parent.iterdir() if p.name.startswith(f".{name}{TMP_TAG}")
                     or p.name.startswith(f".{name}{OLD_TAG}")]
    except OSError:
        return
    for p in leftovers:
        if OLD_TAG in p.name and not (target.exists() or target.is_symlink()) and (p / "x").exists():
            os.replace(p / "x", target)  # killed between the two renames of a replacement: the old result returns
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                p.unlink()


_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2(RENAME_EXCHANGE)``); False where it is not supported."""
    if sys.platform != "linux":
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    res = fn(at_fdcwd, os.fsencode(str(a)), at_fdcwd, os.fsencode(str(b)), _RENAME_EXCHANGE)
    if res == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _swap_into_place(new: Path, target: Path) -> None:
    """Put ``new`` at ``target``; an existing ``target`` is replaced in one step and then removed."""
    parent = target.parent
    if not (target.exists() or target.is_symlink()):
        os.replace(new, target)
    elif target.is_dir() and not any(target.iterdir()):
        os.replace(new, target)  # rename(2) replaces an empty folder
    elif _exchange(new, target):
        _remove(new)  # now holds the old result
    else:
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}{OLD_TAG}", dir=parent))
        os.replace(target, old / "x")
        os.replace(new, target)
        shutil.rmtree(old, ignore_errors=True)
    fsync_dir(parent)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


def _parent_for(out: Path, what: str = "output folder", option: str = "--out") -> Path:
    parent = out.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot write the {what} {out} ({e.strerror or e}: {parent}); choose a writable {option}") \
            from None
    return parent


# ------------------------------------------------------------------------------------------ outputs
@contextlib.contextmanager
def output_dir(out: str | os.PathLike, kind: str, what: str | None = None, overwrite: bool = False,
               inputs: Iterable[str | os.PathLike | None] = (), option: str = "--out",
               asked: bool = True) -> Iterator[Path]:
    """Yield a temporary folder beside ``out``; when the block finishes it becomes ``out`` (marked ``kind``).

    ``out`` may be new or an empty folder; an existing result is replaced only with ``overwrite`` and
    only if it is a plmkit output of the same ``kind``, after the new one is complete. On any error the
    temporary folder is removed and ``out`` is as it was. ``inputs`` are this command's inputs:
    ``out`` may not be, hold or sit inside any of them.
    """
    shown = str(out)
    what = what or kind.replace("-", " ")
    inputs = list(inputs)
    check_output_dir(out, kind, what, overwrite, inputs, option, asked)  # fail fast, before any work
    target = real(out)
    parent = _parent_for(target, "output folder", option)
    lock = _Lock(parent / f".{target.name}{LOCK_SUFFIX}", Path(shown), remove=True).acquire()
    try:
        _clean_stale(parent, target.name, target)
        try:
            tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}{TMP_TAG}", dir=parent))
            as_created(tmp, directory=True)
        except OSError as e:
            raise UsageError(f"cannot write the output folder {shown} ({e.strerror or e}); choose a writable --out") \
                from None
        _HELD.add(real(tmp))
        try:
            yield tmp
            write_marker(tmp, kind)
            fsync_dir(tmp)
            # a non-plmkit writer may have made it meanwhile
            check_replaceable(target, kind, what, overwrite, shown, option, asked)
            _swap_into_place(tmp, target)
        except BaseException:
            _remove(tmp)
            raise
        finally:
            _HELD.discard(real(tmp))
    finally:
        lock.release()


def check_files(targets: Sequence[str | os.PathLike], what: str, overwrite: bool = False,
                is_ours: Callable[[Path], bool] | None = None, inputs: Iterable[str | os.PathLike | None] = (),
                option: str = "--out") -> None:
    """Fail fast unless every target is new, or (with ``overwrite``) this writer's own output; none is an input."""
    inputs = list(inputs)
    for t in targets:
        check_not_an_input(t, inputs, option)
        p = real(t)
        if not (p.exists() or p.is_symlink()):
            continue
        if p.is_dir():
            raise UsageError(f"{option} {t} is a folder; {option} must name a file")
        if not overwrite:
            hint = " or pass --overwrite" if is_ours is not None else " (plmkit never overwrites files)"
            raise UsageError(f"{t} already exists; choose another {option}{hint}")
        if is_ours is None or not is_ours(p):
            raise UsageError(f"--overwrite refuses to replace {t}: it is not a {what} written by plmkit (nothing "
                             f"was changed); choose another {option} or remove it yourself")


@contextlib.contextmanager
def output_files(targets: Sequence[str | os.PathLike], what: str, overwrite: bool = False,
                 is_ours: Callable[[Path], bool] | None = None, inputs: Iterable[str | os.PathLike | None] = (),
                 option: str = "--out") -> Iterator[list[Path]]:
    """Yield temporary file paths beside ``targets``; when the block finishes they replace the targets.

    An existing target is replaced only with ``overwrite`` and only when ``is_ours(target)`` says it is
    this writer's own output (without ``is_ours``, never). On any error the temporary files are removed
    and the targets are as they were.
    """
    paths = [real(t) for t in targets]
    inputs = list(inputs)

    def check() -> None:
        check_files(targets, what, overwrite, is_ours, inputs, option)

    check()
    parent = _parent_for(paths[0], "output file", option)
    for p in paths[1:]:
        _parent_for(p, "output file", option)
    lock = _Lock(parent / f".{paths[0].name}{LOCK_SUFFIX}", Path(targets[0]), remove=True).acquire()
    try:
        for p in paths:
            _clean_stale(p.parent, p.name, p)
        tmps = []
        try:
            for p in paths:
                fd, name = tempfile.mkstemp(prefix=f".{p.name}{TMP_TAG}", dir=p.parent)
                os.close(fd)
                as_created(name)
                tmps.append(Path(name))
            yield tmps
            check()
            for tmp, p in zip(tmps, paths):
                with open(tmp, "rb") as f:
                    os.fsync(f.fileno())
                os.replace(tmp, p)
            fsync_dir(parent)
        finally:
            for tmp in tmps:
                with contextlib.suppress(OSError):
                    tmp.unlink()
    finally:
        lock.release()


class RunFolder:
    """A folder a long command writes in place (a training run): locked, marked, and cleaned after an early failure."""

    def __init__(self, path: Path, created: bool, before: set[str]):
        self.path, self.created, self.before = path, created, before

    def written(self) -> list[str]:
        try:
            return sorted(p.name for p in self.path.iterdir() if not own_name(p.name) and p.name not in self.before)
        except OSError:
            return []


@contextlib.contextmanager
def run_folder(out: str | os.PathLike, kind: str, inputs: Iterable[str | os.PathLike | None] = (),
               accept: Callable[[Path], None] | None = None, worth_keeping: Callable[[Path], bool] | None = None,
               lock: bool = True, option: str = "--out") -> Iterator[RunFolder]:
    """Lock the run folder ``out`` (created if needed) for this process while the block runs.

    ``accept(out)`` decides, before anything is written and again once the lock is held, whether the
    folder may take the run (new, empty, or a run to resume); it raises otherwise. When the block fails
    and ``worth_keeping(out)`` is false (nothing saved worth resuming), what this process created in the
    folder is removed — and the folder itself if it created it — so that the corrected command runs
    again. ``lock=False`` (the non-zero ranks of a distributed run) only checks.
    """
    check_not_an_input(out, inputs, option)
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{option} {out} exists and is not a folder; choose another {option}")
    if accept is not None:
        accept(path)
    if not lock:
        yield RunFolder(path, False, set())
        return
    created = not path.exists()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create {option} {out} ({e.strerror or e}); choose a writable {option}") from None
    held = _Lock(path / LOCK, Path(str(out)), remove=True)  # no lock file outlives the command
    key = real(path)
    had_marker = (path / MARKER).exists()
    run: RunFolder | None = None
    try:
        held.acquire()
        if accept is not None:
            accept(path)  # another command may have changed it before we held the lock
        before = {p.name for p in path.iterdir() if not own_name(p.name)}
        had_marker = (path / MARKER).exists()
        if not had_marker and not before:
            write_marker(path, kind, [])
        run = RunFolder(path, created, before)
        _HELD.add(key)
        yield run
    except BaseException:
        if run is None or worth_keeping is None or not worth_keeping(path):
            # Nothing worth resuming was saved: take back what this command wrote, so that the rerun is not refused.
            for name in run.written() if run is not None else []:
                _remove(path / name)
            if not had_marker:
                with contextlib.suppress(OSError):
                    (path / MARKER).unlink()
            held.release()
            if created:
                with contextlib.suppress(OSError):
                    path.rmdir()
        raise
    finally:
        _HELD.discard(key)
        if held.fd is not None:
            if read_marker(path) is not None and run is not None:
                record_entries(path, run.written())
            held.release()
