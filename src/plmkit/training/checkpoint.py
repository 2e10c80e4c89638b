"""Checkpoints that survive crashes: atomic, checksummed, rotated, resumable bit for bit.

A run folder holds ``checkpoints/step-NNNNNNN/``; each is a complete model folder in the shared
Hugging Face layout (``config.json``, ``model.safetensors``, tokenizer files) plus the trainer state
beside it:

* ``optimizer.safetensors`` + ``optimizer.json`` — optimiser tensors and hyper-parameters,
* ``rng-rank{r}.safetensors`` — every RNG a rank draws from (dropout, sampling),
* ``trainer_state.json`` — step, data-stream position, elapsed time, the resolved config, the run's
  fingerprint (:func:`fingerprint_differences`), and the SHA-256 of every file above (written last: a
  checkpoint without it is incomplete).

A checkpoint is written into a hidden temporary folder, fsynced, then renamed into place, and the
``latest`` pointer is replaced atomically; a crash or a full disk at any moment leaves the previous
checkpoint untouched. On resume, checksums are verified and a damaged checkpoint is skipped in
favour of the newest good one. Nothing is unpickled: tensors are safetensors, the rest JSON.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .._files import as_created, fsync_dir, output_dir, write_json_atomic  # noqa: F401 (re-exported)
from ..errors import CheckpointError, PlmkitError

STATE_NAME = "trainer_state.json"
# Suffixes of pickle-based formats (torch.save, HF Trainer state): plmkit neither reads nor exports them.
PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"}
LATEST = "latest"
PREFIX = "step-"


def sha256(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def disk_full(e: BaseException) -> bool:
    """Whether ``e`` says the disk (or the quota) is full: an OSError, or safetensors' Rust I/O error."""
    if isinstance(e, OSError):
        return e.errno in (errno.ENOSPC, errno.EDQUOT)
    text = str(e)
    return "os error 28" in text or "os error 122" in text or "No space left on device" in text


# ----------------------------------------------------------------------------- optimizer / rng
def optimizer_to_files(opt: torch.optim.Optimizer, folder: Path) -> None:
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, st in sd["state"].items():
        for key, value in st.items():
            if torch.is_tensor(value):
                tensors[f"state.{idx}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[key] = value
    save_file(tensors, str(folder / "optimizer.safetensors"))
    meta = {"param_groups": sd["param_groups"], "scalars": scalars, "class": type(opt).__name__}
    (folder / "optimizer.json").write_text(json.dumps(meta, indent=1))


def optimizer_from_files(opt: torch.optim.Optimizer, folder: Path) -> None:
    try:
        meta = json.loads((folder / "optimizer.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:  # ValueError: bad JSON or not UTF-8
        raise CheckpointError(f"{folder / 'optimizer.json'}: cannot read the optimizer state ({e}); resume from "
                              "another checkpoint (move this one away)") from None
    if meta.get("class") != type(opt).__name__:
        raise CheckpointError(f"{folder}: optimizer state is for {meta.get('class')}, but this run uses "
                              f"{type(opt).__name__}; resume with the same optimizer setting")
    try:
        flat = load_file(str(folder / "optimizer.safetensors"))
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{folder / 'optimizer.safetensors'}: not a readable safetensors file ({e}); resume "
                              "from another checkpoint (move this one away)") from None
    state: dict[int, dict[str, Any]] = {}
    for name, value in flat.items():
        _, idx, key = name.split(".", 2)
        state.setdefault(int(idx), {})[key] = value
    for idx, d in meta["scalars"].items():
        state.setdefault(int(idx), {}).update(d)
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def rng_state() -> dict[str, torch.Tensor]:
    out = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["torch_cuda"] = torch.cuda.get_rng_state()
    return out


def set_rng_state(state: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(state["torch_cpu"])
    if "torch_cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["torch_cuda"])


# ----------------------------------------------------------------------------- save
def checkpoint_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def step_name(step: int) -> str:
    return f"{PREFIX}{step:07d}"


def save_checkpoint(run_dir: Path, step: int, model, optimizer: torch.optim.Optimizer, state: dict[str, Any],
                    tokenizer=None, rank_rng: dict[int, dict[str, torch.Tensor]] | None = None,
                    keep_last: int = 3, model_extra: dict[str, Any] | None = None) -> Path:
    """Write checkpoint ``step`` atomically, point ``latest`` at it and rotate old ones.

    On any failure (a full disk included) the temporary folder is removed, the previous
    checkpoints stay as they were, and a :class:`CheckpointError` says what happened.
    """
    root = checkpoint_dir(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / step_name(step)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{step_name(step)}-", dir=root))
    try:
        as_created(tmp, directory=True)
        model.save_pretrained(tmp, tokenizer=tokenizer, extra=model_extra)
        optimizer_to_files(optimizer, tmp)
        for rank, rng in (rank_rng or {0: rng_state()}).items():
            save_file(rng, str(tmp / f"rng-rank{rank}.safetensors"))
        # Every file, sub-folders included (an ELECTRA checkpoint's generator/, a tagger's elmo/), by its
        # relative POSIX path: resume verifies them all.
        files = sorted(p.relative_to(tmp).as_posix() for p in tmp.rglob("*")
                       if p.is_file() and not p.name.startswith("."))
        manifest = {name: sha256(tmp / name) for name in files}
        write_json_atomic(tmp / STATE_NAME, {**state, "step": step, "files": manifest})
        for p in tmp.rglob("*"):
            if p.is_dir():
                fsync_dir(p)
            elif p.is_file():
                as_created(p)  # safetensors writes 0600 files; give them the umask's mode
                with open(p, "rb") as f:
                    os.fsync(f.fileno())
        fsync_dir(tmp)
        if final.exists():  # a stale copy of this step (e.g. from before a crash): replace it
            shutil.rmtree(final)
        os.replace(tmp, final)
        fsync_dir(root)
        fd, ptr = tempfile.mkstemp(prefix=".latest.", dir=root)
        as_created(ptr)
        with os.fdopen(fd, "w") as f:
            f.write(final.name + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(ptr, root / LATEST)
        fsync_dir(root)
    except (OSError, SafetensorError) as e:  # safetensors reports a full disk as SafetensorError("... os error 28")
        shutil.rmtree(tmp, ignore_errors=True)
        prev = latest_checkpoint(run_dir, verify=False)
        keep = f"; the previous checkpoint {prev} is intact" if prev else ""
        if disk_full(e):
            then = "resume with --resume" if prev else "run the same command again (nothing was saved yet)"
            raise CheckpointError(f"no space left on the device while saving checkpoint {final}{keep}. "
                                  f"Free disk space (or lower --keep-last) and {then}") from None
        raise CheckpointError(f"could not save checkpoint {final}: {e}{keep}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    rotate(run_dir, keep_last)
    return final


def list_checkpoints(run_dir: Path) -> list[Path]:
    root = checkpoint_dir(run_dir)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX) and p.name[len(PREFIX):].isdigit()]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX):]))


def rotate(run_dir: Path, keep_last: int) -> None:
    """Delete all but the newest ``keep_last`` checkpoints, and stale temporary folders."""
    root = checkpoint_dir(run_dir)
    for p in root.glob(".tmp-*"):
        shutil.rmtree(p, ignore_errors=True)
    if keep_last <= 0:
        return
    for old in list_checkpoints(run_dir)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)


def _state_problem(folder: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(the trainer state, None) when ``folder``'s state file is readable, else (None, what is wrong)."""
    state_path = folder / STATE_NAME
    if not state_path.exists():
        return None, f"{state_path} is missing (the save did not finish)"
    try:
        state = json.loads(state_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None, f"{state_path} is not valid JSON"
    if not isinstance(state, dict) or not isinstance(state.get("files", {}), dict):
        return None, f"{state_path} does not hold a trainer state"
    problem = _state_schema_problem(state)
    if problem:
        return None, f"{state_path}: {problem}"
    return state, None


def _count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _state_schema_problem(state: dict[str, Any]) -> str | None:
    """What is wrong with the values of a trainer state (None when every key plmkit reads has its type)."""
    from ..errors import excerpt

    if not _count(state.get("step")):
        return f"'step' must be a non-negative integer, got {excerpt(state.get('step'))}"
    files = state.get("files", {})
    if not all(isinstance(k, str) and isinstance(v, str) and len(v) == 64 for k, v in files.items()):
        return "'files' must map file names to SHA-256 digests"
    if any(k.startswith("/") or "\\" in k or any(part in ("", ".", "..") for part in k.split("/")) for k in files):
        return "'files' names a file outside the checkpoint"
    for key in ("data", "train_config", "run_config"):
        if key in state and not isinstance(state[key], dict):
            return f"'{key}' must be an object, got {excerpt(state[key])}"
    for key in ("tokens_seen", "skipped_steps"):
        if key in state and not _count(state[key]):
            return f"'{key}' must be a non-negative integer, got {excerpt(state[key])}"
    if "world_size" in state and not (_count(state["world_size"]) and state["world_size"] >= 1):
        return f"'world_size' must be a positive integer, got {excerpt(state['world_size'])}"
    e = state.get("elapsed_s", 0.0)
    if isinstance(e, bool) or not isinstance(e, (int, float)) or not math.isfinite(e) or e < 0:
        return f"'elapsed_s' must be a finite number of seconds, got {excerpt(e)}"
    if state.get("log_window") is not None and not isinstance(state["log_window"], dict):
        return f"'log_window' must be an object, got {excerpt(state['log_window'])}"
    return None


def verify_checkpoint(folder: Path) -> str | None:
    """None when every file matches the recorded checksum, else what is wrong."""
    state, problem = _state_problem(folder)
    if state is None:
        return problem
    for name, digest in state.get("files", {}).items():
        p = folder / name
        if not p.exists():
            return f"{p} is missing"
        if sha256(p) != digest:
            return f"{p} does not match its recorded checksum (truncated or corrupted)"
    return None


def latest_checkpoint(run_dir: Path, verify: bool = True) -> Path | None:
    """The newest checkpoint that is complete: a readable trainer state (and, with ``verify``, every file
    matching its checksum).

    A damaged newest checkpoint produces a warning naming the problem and the older one used (only with
    ``verify``: the quick look without checksums is for messages and settings, not for resuming).
    """
    # Folders appear under their final name only once complete, so the newest verified one wins;
    # the `latest` pointer is for people and tools.
    candidates = list_checkpoints(run_dir)
    problems = []
    for folder in sorted(candidates, key=lambda p: int(p.name[len(PREFIX):]), reverse=True):
        problem = verify_checkpoint(folder) if verify else _state_problem(folder)[1]
        if problem is None:
            if problems and verify:
                warnings.warn("skipped damaged checkpoint(s): " + "; ".join(problems) + f"; using {folder}",
                              stacklevel=2)
            return folder
        problems.append(problem)
    if problems:
        raise CheckpointError("no usable checkpoint: " + "; ".join(problems) + ". Restore a checkpoint folder from a "
                              "copy, or start a new run with another --out")
    return None


def load_trainer_state(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / STATE_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:  # ValueError: bad JSON or not UTF-8
        raise CheckpointError(f"{folder / STATE_NAME}: cannot read trainer state ({e})") from None


def load_rng(folder: Path, rank: int) -> dict[str, torch.Tensor] | None:
    path = folder / f"rng-rank{rank}.safetensors"
    if not path.exists():
        return None
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{path}: unreadable RNG state ({e})") from None


# ----------------------------------------------------------------------------- run fingerprint
# A run's fingerprint (``run_config["fingerprint"]``, in run.json and every checkpoint's state) holds what
# makes it this run and not another: the model config, the objective and data settings, the identity of the
# data and the tokenizer, the seed (and for fine-tuning the task, its options and the training file).
# ``--resume`` must find the same fingerprint; the train settings are compared apart (trainer.RESUMABLE_CHANGES).
# Keys that runs of an older plmkit did not record yet, before fingerprints: compared when both sides have them.
LEGACY_FINGERPRINT = {"model": "model", "tokenizer_hash": "tokenizer_hash", "data_config": "data"}
_LABELS = {"tokenizer_hash": "tokenizer hash", "corpus": "prepared data", "train_file": "training file",
           "init": "--init model"}


def file_identity(path: str | os.PathLike) -> dict[str, Any]:
    """``{"path", "size", "sha256"}`` of a file (or, for a folder or a glob such as ``brown/c[a-r]?2``, of all its
    files by relative name)."""
    import glob

    p = Path(path)
    if p.is_file():
        return {"path": str(p.resolve()), "size": p.stat().st_size, "sha256": sha256(p)}
    if p.is_dir():
        root, files = p, [x for x in p.rglob("*") if x.is_file()]
    else:
        root, files = Path(os.sep), [Path(x).resolve() for x in glob.glob(str(p)) if Path(x).is_file()]
    h = hashlib.sha256()
    size = 0
    for f in sorted(files):
        n = f.stat().st_size
        size += n
        h.update(f"{f.relative_to(root).as_posix()}\0{n}\0{sha256(f)}\n".encode())
    return {"path": str(p.resolve()) if p.exists() else str(path), "size": size, "sha256": h.hexdigest()}


def _show(value: Any) -> str:
    """A short, readable form of a fingerprint value for a message."""
    from ..errors import excerpt

    if isinstance(value, dict) and "sha256" in value:
        return f"{value.get('path', '?')} (sha256 {str(value['sha256'])[:12]}…)"
    if isinstance(value, str) and len(value) >= 32 and all(ch in "0123456789abcdef" for ch in value):
        return value[:12] + "…"
    return excerpt(value)


def _differences(a: Any, b: Any, key: str, out: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict) and "sha256" not in a:
        for k in sorted(set(a) & set(b), key=str):  # a key only one side has: a field added by a newer plmkit
            _differences(a[k], b[k], f"{key}.{k}" if key else str(k), out)
        return
    if isinstance(a, dict) and isinstance(b, dict):  # an identity: the content counts, not where it lies
        if a.get("sha256") != b.get("sha256") or a.get("size", b.get("size")) != b.get("size", a.get("size")):
            out.append(f"{_LABELS.get(key, key)} differs: checkpoint {_show(a)} vs now {_show(b)}")
        return
    if a != b:
        if key in _LABELS:
            out.append(f"{_LABELS[key]} differs: checkpoint {_show(a)} vs now {_show(b)}")
        else:
            out.append(f"{key}: checkpoint {_show(a)} vs now {_show(b)}")


def fingerprint_differences(saved_run: dict[str, Any], run: dict[str, Any]) -> list[str]:
    """Every difference between a checkpoint's run fingerprint and this one's, as ``"data.max_length: checkpoint
    128 vs now 64"`` lines; empty when the run may be resumed. ``saved_run`` and ``run`` are run configs."""
    a, b = saved_run.get("fingerprint"), run.get("fingerprint")
    if not (isinstance(a, dict) and isinstance(b, dict)):  # a run from before fingerprints
        a = {name: saved_run[k] for k, name in LEGACY_FINGERPRINT.items() if k in saved_run}
        b = {name: run[k] for k, name in LEGACY_FINGERPRINT.items() if k in run}
    # As JSON holds them (tuples are lists, integer keys strings), so that this run's compares like the saved one.
    a, b = (json.loads(json.dumps(x, default=str)) for x in (a, b))
    out: list[str] = []
    _differences(a, b, "", out)
    return out


def export_checkpoint(run_dir: Path, out: Path, step: int | None = None, overwrite: bool = False) -> Path:
    """Copy one checkpoint's model folder (weights, config, tokenizer; no trainer state) to ``out``."""
    run_dir, out = Path(run_dir), Path(out)
    if not checkpoint_dir(run_dir).is_dir():
        raise PlmkitError(f"{run_dir} is not a plmkit run folder (it has no checkpoints/); pass the --out "
                          "folder of 'plmkit pretrain' or 'plmkit finetune'")
    if step is None:
        src = latest_checkpoint(run_dir)
        if src is None:
            raise CheckpointError(f"{run_dir} has no complete checkpoint yet")
    else:
        src = checkpoint_dir(run_dir) / step_name(step)
        if not src.is_dir():
            have = ", ".join(str(int(p.name[len(PREFIX):])) for p in list_checkpoints(run_dir)) or "none"
            raise CheckpointError(f"{run_dir} has no checkpoint at step {step}; available steps: {have}")
        problem = verify_checkpoint(src)
        if problem:
            raise CheckpointError(f"checkpoint {src} is damaged: {problem}; export another --step (or leave --step "
                                  "out for the newest good one)")
    trainer_files = {STATE_NAME, "optimizer.safetensors", "optimizer.json"}
    # Built next to `out` and swapped in when complete; --overwrite replaces only a model folder plmkit exported,
    # and `out` may not be (or sit inside) the run, its checkpoints included.
    with output_dir(out, "model", "model folder", overwrite, inputs=[run_dir]) as tmp:
        for p in src.iterdir():
            # Pickle-format files (pytorch_model.bin, optimizer.pt, training_args.bin ...) are never plmkit's:
            # they are not carried into a model folder that others will load.
            if p.is_dir():  # e.g. a BiLSTM tagger's frozen ELMo in elmo/
                shutil.copytree(p, tmp / p.name)
            elif p.is_file() and p.name not in trainer_files and not p.name.startswith("rng-rank") \
                    and p.suffix not in PICKLE_SUFFIXES:
                shutil.copy2(p, tmp / p.name)
    return out


# ----------------------------------------------------------------------------- run folders
# What the trainer writes at the top of a run folder (besides plmkit's marker and lock, see plmkit._files).
RUN_ENTRIES = frozenset({"run.json", "metrics.jsonl", "tb", "checkpoints"})


def run_contents(out: Path) -> list[str]:
    """The names in run folder ``out`` other than plmkit's own bookkeeping (marker, lock, the marker's temporary file while
    it is replaced: ``_files.own_name``); empty when it does not exist."""
    from .._files import own_name

    if not Path(out).is_dir():
        return []
    return sorted(p.name for p in Path(out).iterdir() if not own_name(p.name))


def worth_keeping(out: Path) -> bool:
    """Whether run folder ``out`` holds something worth resuming or using: a checkpoint or a finished model."""
    out = Path(out)
    return bool(list_checkpoints(out)) or any(out.rglob(STATE_NAME)) or any(out.rglob("config.json")) \
        or any(out.rglob("metrics.json"))


def is_dead_attempt(out: Path) -> bool:
    """Whether ``out`` holds only an attempt killed before its first checkpoint (nothing in it worth resuming).

    Only a folder that plmkit marked as a run and that holds nothing but the trainer's own files and no
    checkpoint qualifies.
    """
    from .._files import read_marker

    out = Path(out)
    marker = read_marker(out)
    names = set(run_contents(out))
    if marker is None or marker.get("kind") not in ("run", "finetune-run") or not names or not names <= RUN_ENTRIES:
        return False
    return not (list_checkpoints(out) or (checkpoint_dir(out) / LATEST).exists())


def clear_dead_attempt(out: Path) -> bool:
    """Remove a dead attempt's files (see :func:`is_dead_attempt`) so that the same command runs again."""
    if not is_dead_attempt(out):
        return False
    for name in run_contents(out):
        p = Path(out) / name
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink()
    return True
