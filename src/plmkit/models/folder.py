"""A model folder on disk: ``config.json``, ``model.safetensors`` (or its shards) and word lists.

Every model kind (Transformer, ELMo, BiLSTM tagger) reads and writes its folder through these
functions: checked reading (a damaged or foreign file is a CheckpointError naming it, weights are
read only through safetensors, nothing is ever unpickled) and atomic writing
(:func:`plmkit._files.atomic_write`: a crash leaves the old file or the new one, never half of one).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .._files import atomic_write, read_text_lines
from ..errors import CheckpointError

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}); fix the file or "
                              "restore it from the model's source") from None
    except UnicodeDecodeError as e:
        raise CheckpointError(f"{path}: not a JSON text file (byte {e.start}: {e.reason}; it may be binary, e.g. a "
                              "pickle); plmkit reads configuration only as JSON — restore the file from the model's "
                              "source") from None


def read_config(path: str | os.PathLike) -> dict[str, Any]:
    folder = Path(path)
    if not folder.exists():
        raise CheckpointError(f"model folder {folder} does not exist; give a folder with config.json and "
                              "model.safetensors (a plmkit run's export or a Hugging Face model folder)")
    if not folder.is_dir():
        raise CheckpointError(f"{folder} is a file, not a model folder; pass the folder that holds config.json")
    cfg = folder / CONFIG_NAME
    if not cfg.exists():
        raise CheckpointError(f"{folder} has no config.json, so it is not a model folder; give the folder "
                              "written by save_pretrained / plmkit export / transformers")
    data = _read_json(cfg)
    if not isinstance(data, dict):
        from ..errors import excerpt, type_name

        raise CheckpointError(f"{cfg}: expected a JSON object of settings {{\"model_type\": ..., ...}}, got "
                              f"{type_name(data)} {excerpt(data)}; restore the file from the model's source")
    return data


INDEX_NAME = "model.safetensors.index.json"


def _read_index(index: Path) -> list[str]:
    """The shard file names of ``model.safetensors.index.json``, checked: an object whose ``weight_map`` maps
    each tensor name (once) to a shard file inside the folder that exists."""
    from ..errors import excerpt, type_name

    hint = "restore it from the model's source (or merge the shards into one model.safetensors)"
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for k, v in items:
            if k in seen:
                duplicates.append(k)
            seen[k] = v
        return seen

    try:
        with open(index, encoding="utf-8") as f:
            data = json.load(f, object_pairs_hook=pairs)
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{index}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}); {hint}") from None
    except UnicodeDecodeError as e:
        raise CheckpointError(f"{index}: not a JSON text file (byte {e.start}: {e.reason}); {hint}") from None
    except (ValueError, RecursionError) as e:
        raise CheckpointError(f"{index}: cannot be read as JSON ({excerpt(str(e))}); {hint}") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{index}: expected a JSON object with a 'weight_map', got {type_name(data)} "
                              f"({excerpt(data)}); {hint}")
    wmap = data.get("weight_map")
    if not isinstance(wmap, dict) or not wmap:
        found = "no 'weight_map'" if "weight_map" not in data else f"a 'weight_map' that is {type_name(wmap)}"
        raise CheckpointError(f"{index}: {found}; expected 'weight_map': {{tensor name: shard file}}; {hint}")
    if duplicates:
        raise CheckpointError(f"{index}: weight_map lists tensor {excerpt(duplicates[0])} twice; each tensor is in "
                              f"one shard — {hint}")
    folder = index.parent.resolve()
    names: list[str] = []
    for key, shard in wmap.items():
        if not isinstance(shard, str):
            raise CheckpointError(f"{index}: weight_map[{excerpt(key)}] is {type_name(shard)} ({excerpt(shard)}), "
                                  f"expected a shard file name; {hint}")
        if not shard or "/" in shard or "\\" in shard or shard in (".", "..") or "\x00" in shard \
                or not shard.endswith(".safetensors"):
            raise CheckpointError(f"{index}: weight_map[{excerpt(key)}] names {excerpt(shard)}; a shard must be a "
                                  "*.safetensors file name in the model folder itself (no '/', no '..'); " + hint)
        f = index.parent / shard
        if f.resolve().parent != folder:
            raise CheckpointError(f"{index}: shard {excerpt(shard)} resolves outside {index.parent}; {hint}")
        if shard not in names:
            if not f.is_file():
                raise CheckpointError(f"{index}: shard {excerpt(shard)} (of tensor {excerpt(key)}) is missing from "
                                      f"{index.parent}; copy every shard file, or {hint}")
            names.append(shard)
    return sorted(names)


def weight_files(folder: Path) -> list[Path]:
    """``model.safetensors``, or the shards its checked index names; CheckpointError when there are none."""
    files = [folder / WEIGHTS_NAME]
    index = folder / INDEX_NAME
    if not files[0].exists() and index.exists():
        files = [folder / n for n in _read_index(index)]
    if not files[0].exists():
        pickled = [n for n in ("pytorch_model.bin", "tf_model.h5", "flax_model.msgpack") if (folder / n).exists()]
        hint = (f" It has {pickled[0]}, which plmkit will not unpickle; convert it once with transformers: "
                "AutoModel.from_pretrained(dir).save_pretrained(dir, safe_serialization=True)") if pickled else ""
        raise CheckpointError(f"{folder} has no {WEIGHTS_NAME}.{hint}")
    return files


_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
           "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
           "BOOL": torch.bool}
_MAX_HEADER = 100_000_000  # safetensors' own limit on the JSON header


def read_header(f: Path) -> dict[str, tuple[torch.dtype, tuple[int, ...]]]:
    """Name → (dtype, shape) of every tensor in a safetensors file, from its JSON header alone.

    Nothing but the header is read, so this is instant however large the weights are; the header is
    checked as safetensors checks it (length, dtypes, shapes, offsets within the file), so a truncated
    or foreign file is a CheckpointError here too.
    """
    def bad(why: str) -> CheckpointError:
        return CheckpointError(f"{f}: cannot read safetensors file ({why}); the file is truncated or corrupt — "
                               "restore it or use an earlier checkpoint")

    try:
        size = f.stat().st_size
        with open(f, "rb") as fh:
            head = fh.read(8)
            n = int.from_bytes(head, "little") if len(head) == 8 else -1
            if n < 2 or n > min(size - 8, _MAX_HEADER):
                raise bad("no valid header length")
            header = json.loads(fh.read(n).decode("utf-8"))
    except CheckpointError:
        raise
    except OSError:
        raise
    except (ValueError, RecursionError):  # JSON or UTF-8
        raise bad("its header is not valid JSON") from None
    if not isinstance(header, dict):
        raise bad("its header is not a JSON object")
    data_size = size - 8 - n
    out: dict[str, tuple[torch.dtype, tuple[int, ...]]] = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype = _DTYPES[entry["dtype"]]
            shape = tuple(entry["shape"])
            start, end = entry["data_offsets"]
            ok = all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in (*shape, start, end))
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok:
            raise bad(f"tensor {name[:60]!r} has no valid dtype, shape and offsets")
        numel = 1
        for d in shape:
            numel *= d
        if end - start != numel * dtype.itemsize or end > data_size:
            raise bad(f"tensor {name[:60]!r} does not fit in the file")
        out[name] = (dtype, shape)
    return out


def header_state(folder: Path) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors as meta tensors (shape and dtype, no data) from the safetensors headers."""
    state: dict[str, torch.Tensor] = {}
    for f in weight_files(folder):
        for name, (dtype, shape) in read_header(f).items():
            state[name] = torch.empty(shape, dtype=dtype, device="meta")
    return state


def load_state(folder: Path) -> dict[str, torch.Tensor]:
    """All tensors of ``model.safetensors`` (or sharded ``model-0000x-of-0000y.safetensors``).

    The sharded index is checked (see :func:`_read_index`); a tensor found in two shards, or not in
    the shard the index names, is a CheckpointError, as is a file safetensors cannot parse.
    """
    files = weight_files(folder)
    index = folder / INDEX_NAME
    wmap: dict[str, str] = {}
    if files[0].name != WEIGHTS_NAME:
        with open(index, encoding="utf-8") as f:
            wmap = json.load(f)["weight_map"]
    state: dict[str, torch.Tensor] = {}
    origin: dict[str, Path] = {}
    for f in files:
        try:
            with safe_open(str(f), framework="pt") as sf:
                for k in sf.keys():
                    if k in state:
                        raise CheckpointError(f"{f}: tensor {k} is also in {origin[k].name}; a tensor may be in one "
                                              "shard only — restore the files from the model's source")
                    state[k] = sf.get_tensor(k)
                    origin[k] = f
        except CheckpointError:
            raise
        except Exception as e:  # SafetensorError, OSError, ValueError, or anything a malformed header raises
            from ..errors import excerpt

            raise CheckpointError(f"{f}: cannot read safetensors file ({excerpt(str(e), 160)}); the file is truncated "
                                  "or corrupt — restore it or use an earlier checkpoint") from None
    for k, shard in wmap.items():
        if k not in state:
            raise CheckpointError(f"{index}: tensor {k} should be in {shard} but is not; the index and the shards "
                                  "do not match — restore them from the model's source")
    return state


def read_word_list(file: Path, what: str) -> list[str]:
    """A one-word-per-line vocabulary file of a model folder (ELMo's ``elmo_vocab.txt``, a tagger's words):
    UTF-8, non-empty, each word once — else a CheckpointError naming the file and line."""
    from ..errors import excerpt

    fix = "restore it from the folder the model was saved to"
    words = read_text_lines(file, f"word list ({what}, one word per line)", fix)
    if not words:
        raise CheckpointError(f"{file}: empty; it holds {what}, one word per line — restore it from the folder the "
                              "model was saved to")
    seen: dict[str, int] = {}
    for i, w in enumerate(words, start=1):
        if w in seen:
            raise CheckpointError(f"{file}, line {i}: word {excerpt(w)} already appears on line {seen[w]}; each word "
                                  "may appear once — restore the file from the folder the model was saved to")
        seen[w] = i
    return words


def check_tensor(file: Path, name: str, value: torch.Tensor, like: torch.Tensor, source: str = CONFIG_NAME) -> None:
    """A loaded tensor against the model's own: same shape, a dtype of the same kind (floating point for
    floating parameters, integer for integer buffers), and finite values. CheckpointError naming the tensor."""
    if tuple(value.shape) != tuple(like.shape):
        raise CheckpointError(f"{file}: tensor {name} has shape {tuple(value.shape)} but {source} implies "
                              f"{tuple(like.shape)}; the weights do not match this config — check {source} or "
                              "re-export the model")
    if like.is_floating_point():
        if not value.is_floating_point():
            raise CheckpointError(f"{file}: tensor {name} has dtype {str(value.dtype).replace('torch.', '')}, expected "
                                  "floating-point weights; the file is corrupt or not a model's weights")
        if value.numel() and not value.is_meta and not bool(torch.isfinite(value).all()):
            bad = int((~torch.isfinite(value)).sum())
            raise CheckpointError(f"{file}: tensor {name} holds {bad:,} NaN or infinite value(s); the weights are "
                                  "damaged (a diverged run?) — use an earlier checkpoint")
    elif like.dtype != value.dtype and (value.is_floating_point() or value.is_complex()
                                        or (like.dtype == torch.bool) != (value.dtype == torch.bool)):
        raise CheckpointError(f"{file}: tensor {name} has dtype {str(value.dtype).replace('torch.', '')}, expected "
                              f"{str(like.dtype).replace('torch.', '')}")


# ----------------------------------------------------------------------------- write
def write_weights(folder: Path, state: dict[str, torch.Tensor]) -> None:
    """``model.safetensors`` of ``state`` (contiguous CPU tensors), written atomically."""
    atomic_write(Path(folder) / WEIGHTS_NAME, lambda tmp: save_file(state, tmp, metadata={"format": "pt"}))


def write_config(folder: Path, config: dict[str, Any]) -> None:
    """``config.json`` (indented JSON), written atomically."""
    atomic_write(Path(folder) / CONFIG_NAME, lambda tmp: Path(tmp).write_text(json.dumps(config, indent=2) + "\n"))


def write_word_list(file: Path, words: Iterable[str]) -> None:
    """A one-word-per-line UTF-8 file (what :func:`read_word_list` reads), written atomically."""
    text = "".join(w + "\n" for w in words)
    atomic_write(Path(file), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
