"""The training loop shared by pretraining, fine-tuning and ELMo.

It relies only on the loss contract of :mod:`plmkit.models.protocol`: ``model(**batch)`` returns an
output whose ``loss_terms`` are means, each naming the count it averages over, and
``model.loss_counts(batch)`` gives those counts on the host; ``model.prepare_training()`` runs once. Resuming
loads weights through a function the recipe passes in (``load_weights``). What it adds, as users of
large-model training expect:

* gradient accumulation to any effective batch, with the loss normalised by the number of
  predictions in the *whole* effective batch (all micro-batches and all ranks), so K micro-batches
  of B equal one batch of K·B, and N ranks of B equal one process of N·B, to rounding;
* bf16 autocast (CPU with AVX512-BF16, or GPU), activation checkpointing, optional ``torch.compile``;
* AdamW (fused) or LAMB, warmup then linear/cosine decay — by step, or by the clock with a time budget;
* gradient clipping; a NaN/inf loss stops the run (keeping the last good checkpoint) or is skipped;
* ``metrics.jsonl``, TensorBoard events, and progress on rank 0: a tqdm bar (loss, tokens/s, ETA) on a terminal,
  a plain status line every ``log_every`` steps in a log (:mod:`plmkit._progress`);
* atomic, checksummed checkpoints with optimizer, RNG and data-stream state, rotated, resumed bit
  for bit — by default every ``save_minutes`` (5) of training, so a kill loses at most that; SIGINT/SIGTERM
  save a checkpoint and stop cleanly; a resume whose model, data or seed differ from the run's is refused;
* DDP under torchrun (gloo on CPU, NCCL on GPU): every rank draws its own slice, rank 0 logs and saves.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import re
import signal
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Protocol

import torch
from torch import nn

# TrainConfig lives in plmkit.config with every other config; it stays importable from here.
from ..config import TrainConfig  # noqa: F401
from .._files import read_marker
from ..errors import CheckpointError, ConfigError, PlmkitError, UsageError, excerpt
from . import accel
from . import checkpoint as ckpt
from . import distributed as distr
from .autobatch import current_rss
from .optim import ResidentEmbeddingGrads, build_optimizer, clipped_step, grad_norm as total_grad_norm, lr_factor

if TYPE_CHECKING:
    from ..models.protocol import LossTerm


class BatchSource(Protocol):
    """Endless, resumable source of micro-batches (dicts of model inputs)."""

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


def _malloc_trim():
    """glibc's ``malloc_trim`` (None elsewhere): hands freed heap pages back to the operating system.

    On CPU the MLM head allocates and frees tensors whose size varies with the number of masked
    tokens each step. glibc serves them from its heap once its dynamic mmap threshold has risen, and
    the heap fragments: resident memory climbed by ~100 MB over the first minutes of a
    bert-tiny 16 × 128 run (benchmarks/soak.py). Trimming returns those pages — but a trim also hands
    back the pages the next large batch needs again, and faulting them in costs: trimming at every log
    line (every 10 steps) made a CoNLL-2003 fine-tuning epoch 301 s instead of 251 s (batches of 5 to
    128 tokens), and even one trim a minute left epochs at 301–318 s against 251–259 s with none
    (benchmarks/trainer_overhead.py). So the trainer trims only when memory has grown: when the
    resident set at a log line exceeds ``TRIM_GROWTH`` times its level at the first log line (or what
    stayed resident after the last trim). A run whose working set is stable never trims.
    """
    if sys.platform != "linux":
        return None
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        trim = libc.malloc_trim
        trim.argtypes = [ctypes.c_size_t]
        return trim
    except (OSError, AttributeError):  # musl and other C libraries have no malloc_trim
        return None


TRIM_GROWTH = 1.5  # trim when the resident set grew past this factor (see _malloc_trim)


class _HeapTrimmer:
    """Calls ``_malloc_trim`` at a log line only when the resident set grew past ``TRIM_GROWTH`` times
    its first level, or what stayed resident after the last trim (see ``_malloc_trim``)."""

    def __init__(self):
        self.trim = _malloc_trim()
        self.base: int | None = None

    def __call__(self) -> None:
        rss = current_rss() if self.trim is not None else None
        if rss is None:
            return
        if self.base is None:
            self.base = rss
        elif rss > TRIM_GROWTH * self.base:
            self.trim(0)
            self.base = max(self.base, current_rss() or self.base)


# Settings that may change when a run is resumed; anything else must match the checkpoint.
RESUMABLE_CHANGES = {"max_steps", "max_time", "epochs", "stop_after", "log_every", "eval_every", "eval_at_start",
                     "save_every", "save_minutes", "keep_last", "progress", "tensorboard", "device", "compile",
                     "cuda_graphs", "on_nonfinite"}


def parse_duration(text: str | float | int | None) -> float | None:
    """'90s', '30m', '1.5h', '2h30m' or a number of seconds → seconds (positive, at most MAX_DURATION)."""
    if text is None:
        return None
    if isinstance(text, bool):
        raise ConfigError(f"duration {excerpt(text)} is not a duration; use e.g. 90s, 30m, 1.5h or 2h30m")
    if isinstance(text, (int, float)):
        total = float(text)
    else:
        s = str(text).strip().lower()
        # numbers with an optional fraction, each followed by a unit; the last may have none (seconds)
        parts = _DURATION_PART.findall(s)
        if not s or "".join(n + u for n, u in parts) != s or any(not u for _, u in parts[:-1]):
            raise ConfigError(f"cannot read duration {excerpt(text)}; use e.g. 90s, 30m, 1.5h or 2h30m")
        total = sum(float(n) * _DURATION_UNITS[u or "s"] for n, u in parts)
    if not total > 0:  # also NaN
        raise ConfigError(f"duration {excerpt(text)} must be positive, e.g. 90s, 30m, 1.5h or 2h30m")
    if total > MAX_DURATION:
        raise ConfigError(f"duration {excerpt(text)} is longer than {MAX_DURATION // 86400:.0f} days; give at most "
                          "365d (or stop by --max-steps)")
    return total


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)([smhd]?)")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_DURATION = 365 * 86400.0  # a year: beyond it, clock arithmetic (ETAs, timedelta) stops being meaningful


class NonFiniteLoss(PlmkitError):
    """The loss became NaN or inf."""


def load_weights_from_folder(folder: Path, task: str | None = "auto") -> dict[str, torch.Tensor]:
    """The default ``load_weights`` of :class:`Trainer`: the weights of checkpoint ``folder`` as saved by
    ``model.save_pretrained``, read back by :func:`plmkit.models.from_pretrained` (any model kind) with the heads
    of ``task`` ("auto": the checkpoint's own). A recipe passes ``functools.partial(load_weights_from_folder,
    task=...)`` or its own loader."""
    from ..models import from_pretrained

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return from_pretrained(folder, task=task).state_dict()


def check_run_out(out: str | os.PathLike, resume: bool, allow_dead: bool = True) -> None:
    """Fail fast, writing nothing, unless run folder ``out`` may take this run.

    Without ``resume``: a new or empty folder, or (``allow_dead``) an attempt that was killed before its
    first checkpoint. With ``resume``: a run with a checkpoint, or one that stopped before its first.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a folder; choose a new --out")
    existing = ckpt.list_checkpoints(out)
    if resume:
        started = (out / "run.json").exists() or (out / "metrics.jsonl").exists() or (
            read_marker(out) is not None and not ckpt.run_contents(out))  # killed before it wrote anything
        if not existing and not started:
            raise PlmkitError(f"--resume: {out} has no checkpoint to resume from; start without --resume")
        return
    if allow_dead and ckpt.is_dead_attempt(out):
        return
    if existing or (out / "metrics.jsonl").exists():
        raise PlmkitError(f"{out} already holds a run; continue it with --resume, or choose a new --out "
                          "(plmkit never overwrites a run)")
    if ckpt.run_contents(out):
        raise UsageError(f"--out {out} exists and is not an empty folder (nor a plmkit run); choose a new --out "
                         "(plmkit writes only into a new or empty folder)")


def _read_log_window(saved: Any) -> dict[str, Any] | None:
    """The log window a checkpoint recorded (steps since the last log line), or None when absent or malformed."""
    if not isinstance(saved, dict):
        return None
    loss, n, extra = saved.get("loss"), saved.get("n"), saved.get("extra", {})
    if not (isinstance(loss, float) and isinstance(n, int) and n >= 0 and isinstance(extra, dict)
            and all(isinstance(k, str) and isinstance(v, float) for k, v in extra.items())):
        return None
    return {"loss": loss, "n": n, "extra": dict(extra)}


class Trainer:
    """Train ``model`` on micro-batches from ``train`` until a stop condition; checkpoint into ``out_dir``."""

    def __init__(self, model: nn.Module, config: TrainConfig, train: BatchSource, out_dir: str | os.PathLike,
                 evaluate: Callable[[nn.Module], dict[str, float]] | None = None,
                 steps_per_epoch: int | None = None, tokenizer=None, run_config: dict[str, Any] | None = None,
                 resume: bool = False, model_extra: dict[str, Any] | None = None,
                 load_weights: Callable[[Path], Mapping[str, torch.Tensor]] | None = None):
        """``load_weights(folder)`` returns the state dict of a checkpoint folder for ``--resume`` (default:
        :func:`load_weights_from_folder`); ``model`` follows the loss contract (:mod:`plmkit.models.protocol`)."""
        config.validate()
        self.config = config
        self.model = model
        self.train_source = train
        self.out_dir = Path(out_dir)
        self.evaluate_fn = evaluate
        self.steps_per_epoch = steps_per_epoch
        self.tokenizer = tokenizer
        self.run_config = dict(run_config or {})
        self.resume = resume
        self.model_extra = model_extra
        self.load_weights = load_weights or load_weights_from_folder
        self.dist = distr.init(config.device)
        self.step = 0
        self.elapsed = 0.0
        self.tokens_seen = 0
        self.skipped = 0
        self.history: list[dict[str, Any]] = []
        self._stop_signal: int | None = None
        # Steps since the last log line, restored on resume so the next line averages the same steps.
        self._log_window: dict[str, Any] | None = None

    # ------------------------------------------------------------------ planning
    @property
    def max_steps(self) -> int | None:
        c = self.config
        candidates = []
        if c.max_steps is not None:
            candidates.append(c.max_steps)
        if c.epochs is not None:
            if not self.steps_per_epoch:
                raise ConfigError("--epochs needs a data source with a known length; use --max-steps instead")
            candidates.append(math.ceil(c.epochs * self.steps_per_epoch / c.grad_accum))
        return min(candidates) if candidates else None

    def warmup_steps(self) -> int | None:
        w = self.config.warmup
        if w >= 1:
            return int(w)
        if self.max_steps is not None and self.config.max_time is None:
            return int(round(w * self.max_steps))
        return None  # a fraction of a time budget

    def lr_at(self, step: int, elapsed: float) -> float:
        """LR for the update that follows ``step`` completed steps (HF's convention)."""
        c = self.config
        if c.max_time is not None and self.max_steps is None:
            progress = elapsed / c.max_time
            if c.warmup >= 1:
                warm = min(1.0, step / c.warmup)
                return c.lr * warm * lr_factor(progress, 0.0, c.schedule, c.min_lr_ratio)
            return c.lr * lr_factor(progress, c.warmup, c.schedule, c.min_lr_ratio)
        total = self.max_steps or 1
        ws = self.warmup_steps() or 0
        return c.lr * lr_factor(step / total, ws / total, c.schedule, c.min_lr_ratio)

    # ------------------------------------------------------------------ setup
    def _prepare_out_dir(self) -> Path | None:
        """The checkpoint to resume from (None: start at step 0), after :func:`check_run_out` accepted ``out``."""
        out = self.out_dir
        single = self.dist.world_size == 1
        check_run_out(out, self.resume, allow_dead=single)
        if self.resume:
            if not ckpt.list_checkpoints(out):
                # The run stopped (or was killed) before its first checkpoint: start it again from step 0.
                if self.dist.is_main:
                    print(f"plmkit: note: {out} has no checkpoint yet (the run stopped before its first save); "
                          "starting it again from step 0", file=sys.stderr)
                return None
            return ckpt.latest_checkpoint(out)
        if single and ckpt.clear_dead_attempt(out):
            print(f"plmkit: note: {out} held an attempt that stopped before its first checkpoint (nothing to resume); "
                  "starting the run again", file=sys.stderr)
        return None

    def _check_resume_config(self, state: dict[str, Any], folder: Path) -> None:
        """Refuse a resume that would not continue the same run, listing every difference at once.

        The train settings must match except ``RESUMABLE_CHANGES`` (stop, logging, saving, device); the run's
        fingerprint (``run_config["fingerprint"]``: model, objective and data settings, identity of the data
        and tokenizer, seed) must match wholly (:func:`checkpoint.fingerprint_differences`).
        """
        saved = state.get("train_config", {})
        saved = saved if isinstance(saved, dict) else {}
        mine = dataclasses.asdict(self.config)
        diffs = [f"{k}: checkpoint {saved[k]!r} vs now {mine[k]!r}" for k in saved
                 if k not in RESUMABLE_CHANGES and k in mine and mine[k] != saved[k]]
        saved_run = state.get("run_config", {})
        diffs += ckpt.fingerprint_differences(saved_run if isinstance(saved_run, dict) else {}, self.run_config)
        diffs = list(dict.fromkeys(diffs))  # the seed is in both
        if diffs:
            count = f"{len(diffs)} difference{'s' if len(diffs) > 1 else ''}"
            listed = "; ".join(diffs)
            raise ConfigError(f"--resume from {folder}: settings differ from the run being resumed ({listed}) "
                              f"— {count}; resume with the original settings, model and data (only stop conditions, "
                              "logging and saving may change), or start a new run with another --out")
        if state.get("world_size", 1) != self.dist.world_size:
            raise ConfigError(f"--resume from {folder}: the run used {state.get('world_size', 1)} process(es), "
                              f"now {self.dist.world_size}; resume with the same --nproc_per_node")

    def _load_resume(self, folder: Path, optimizer: torch.optim.Optimizer) -> None:
        state = ckpt.load_trainer_state(folder)
        self._check_resume_config(state, folder)
        missing, unexpected = self.model.load_state_dict(self.load_weights(folder), strict=False)
        if missing or unexpected:
            raise PlmkitError(f"--resume from {folder}: checkpoint does not match the model "
                              f"(missing {missing[:4]}, unexpected {unexpected[:4]})")
        ckpt.optimizer_from_files(optimizer, folder)
        try:
            self.train_source.load_state_dict(state["data"])
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
            raise CheckpointError(f"--resume from {folder}: the data-stream position in {ckpt.STATE_NAME} is damaged "
                                  f"({type(e).__name__}: {excerpt(str(e))}); restore the checkpoint from a copy, or "
                                  "remove it so that --resume takes the one before") from None
        rng = ckpt.load_rng(folder, self.dist.rank)
        if rng is not None:
            ckpt.set_rng_state(rng)
        self.step = int(state["step"])
        self.elapsed = float(state.get("elapsed_s", 0.0))
        self.tokens_seen = int(state.get("tokens_seen", 0))
        self.skipped = int(state.get("skipped_steps", 0))
        self._log_window = _read_log_window(state.get("log_window"))
        self._truncate_metrics(self.step)

    def _truncate_metrics(self, step: int) -> None:
        """Drop log lines of steps after the checkpoint (they will be redone)."""
        path = self.out_dir / "metrics.jsonl"
        if not self.dist.is_main or not path.exists():
            return
        kept = []
        for line in path.read_text().splitlines():
            try:
                if json.loads(line).get("step", 0) <= step:
                    kept.append(line)
            except json.JSONDecodeError:
                continue  # a line cut by a crash
        tmp = path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(x + "\n" for x in kept))
        os.replace(tmp, path)

    # ------------------------------------------------------------------ loss bookkeeping (models/protocol.py)
    @staticmethod
    def _loss_terms(out) -> list[LossTerm]:
        terms = out.loss_terms
        if not terms or not any(t.in_loss for t in terms):
            raise PlmkitError("the model returned no loss terms; give the batches labels (a model trained by "
                              "plmkit's Trainer reports loss_terms, see plmkit.models.protocol)")
        return terms

    @staticmethod
    def _weighted_loss(terms: list[LossTerm], counts: Mapping[str, int], totals: Mapping[str, int]) -> torch.Tensor:
        """Σ value · count / total over the ``in_loss`` terms: this micro-batch's share of the step's mean."""
        loss = None
        for t in terms:
            if t.in_loss:
                part = t.value * (counts[t.count] / max(totals[t.count], 1))
                loss = part if loss is None else loss + part
        return loss  # type: ignore[return-value]

    # ------------------------------------------------------------------ main loop
    def train(self) -> dict[str, Any]:
        c = self.config
        d = self.dist
        if c.max_steps is None and c.max_time is None and c.epochs is None:
            raise ConfigError("give a stop condition: --max-steps, --max-time or --epochs")
        # Every rank checks (read-only), so a bad --out stops them all instead of leaving ranks at a barrier.
        resume_from = self._prepare_out_dir()
        distr.barrier(d)
        if resume_from is None:
            torch.manual_seed(c.seed + d.rank)
        if c.bf16 and not distr.bf16_is_fast(d.device):
            warnings.warn(f"--bf16: this {d.device.type.upper()} has no native bf16 (no AVX512-BF16/AMX on CPU), so "
                          "autocast emulates it and runs many times slower than fp32; drop --bf16 here", stacklevel=2)
        model = self.model.to(d.device)
        model.prepare_training(gradient_checkpointing=c.gradient_checkpointing)
        accel.prepare_model(model, c, d.device)  # --cuda-graphs / --fp8: refused where they cannot run; FP8 layers
        optimizer = build_optimizer(model, c.optimizer, c.lr, c.weight_decay, (c.adam_beta1, c.adam_beta2), c.adam_eps)
        if resume_from is not None:
            self._load_resume(resume_from, optimizer)
            if d.is_main:
                print(f"resumed from {resume_from} at step {self.step}", file=sys.stderr)
        elif self.resume:
            self._truncate_metrics(0)  # lines of the attempt that never saved are redone
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if d.is_main:
            ckpt.write_json_atomic(self.out_dir / "run.json", {
                **self.run_config, "train_config": dataclasses.asdict(c), "world_size": d.world_size})

        wrapped: nn.Module = model
        if d.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            wrapped = DDP(model, device_ids=[d.device.index] if d.device.type == "cuda" else None)
        forward = accel.compiled(wrapped, c)  # --compile, or --cuda-graphs (mode "reduce-overhead")
        autocast = (lambda: torch.autocast(d.device.type, dtype=torch.bfloat16)) if c.bf16 else contextlib.nullcontext

        writer = self._tensorboard() if d.is_main else None
        metrics_file = open(self.out_dir / "metrics.jsonl", "a", encoding="utf-8") if d.is_main else None
        bar = self._progress_bar() if d.is_main else None
        handlers = self._install_signal_handlers()
        data = iter(self.train_source)
        trim = _HeapTrimmer() if d.device.type == "cpu" else None
        # CPU: embedding tables keep their gradient buffers between steps (optim.ResidentEmbeddingGrads).
        resident = ResidentEmbeddingGrads(model, enabled=d.device.type == "cpu" and not d.enabled and not c.compile)
        params = [p for p in model.parameters() if p.requires_grad]
        last_eval: dict[str, float] = {}
        window = {"loss": 0.0, "n": 0, "tokens": 0, "t0": time.perf_counter(), "extra": {}}
        if self._log_window is not None:  # resumed between two log lines: the next line covers the same steps
            window.update(self._log_window)
        start_wall = time.perf_counter() - self.elapsed
        started = (self.step, time.perf_counter())  # for the ETA of status lines in a log
        # Checkpoints by the clock: rank 0 reads it (one perf_counter call a step) and its decision reaches every
        # rank inside the step's first all-reduce, so all ranks save after the same step at no extra collective.
        save_clock = 60.0 * c.save_minutes if c.save_every != 0 and c.save_minutes > 0 else None
        last_save = time.perf_counter()
        stop_reason = "max_steps"
        try:
            resident.__enter__()  # its __exit__ (finally, below) also undoes a partial entry
            if c.eval_at_start and self.step == 0 and self.evaluate_fn is not None:
                last_eval = self._run_eval(model, metrics_file, writer, time.perf_counter() - start_wall)
                window["t0"] = time.perf_counter()
            model.train()
            while True:
                if self._should_stop(time.perf_counter() - start_wall):
                    stop_reason = self._stop_reason(time.perf_counter() - start_wall)
                    break
                micro = [next(data) for _ in range(c.grad_accum)]
                counts = [model.loss_counts(b) for b in micro]  # on the host, before the copy to the device
                count_names = sorted(counts[0])
                n_tokens = sum(int(b["attention_mask"].sum()) if "attention_mask" in b else b["input_ids"].numel()
                               for b in micro)
                clock_due = save_clock is not None and d.is_main and time.perf_counter() - last_save >= save_clock
                totals = torch.tensor([sum(n[k] for n in counts) for k in count_names] + [float(clock_due),
                                       float(n_tokens)], dtype=torch.float64)
                *summed, save_due, step_tokens = (int(x) for x in distr.all_reduce_sum(totals, d))
                step_counts = dict(zip(count_names, summed))
                # Tokens of the whole effective batch (every rank), so the summary and tokens/s are global.
                self.tokens_seen += step_tokens
                window["tokens"] += step_tokens
                # Running sums on the device (no host sync per micro-batch): the loss and its logged terms.
                total = torch.zeros((), device=d.device, dtype=torch.float32)
                logged: dict[str, torch.Tensor] = {}
                for i, (batch, n) in enumerate(zip(micro, counts)):
                    batch = {k: v.to(d.device, non_blocking=True) for k, v in batch.items()}
                    sync = contextlib.nullcontext() if (not d.enabled or i == len(micro) - 1) else wrapped.no_sync()
                    with sync:
                        with autocast():
                            out = forward(**batch)
                        terms = self._loss_terms(out)
                        loss = self._weighted_loss(terms, n, step_counts)
                        # DDP averages gradients over ranks; the weights already sum to 1 over all ranks.
                        (loss * d.world_size).backward()
                    total += loss.detach().float()
                    for t in terms:
                        if t.logged:
                            acc_t = logged.setdefault(t.name, torch.zeros((), device=d.device, dtype=torch.float32))
                            acc_t += t.value.detach().float() * (n[t.count] / max(step_counts[t.count], 1))
                names = list(logged)  # the same on every rank: the same model reports the same terms
                acc = torch.stack([total, *logged.values()])
                acc = distr.all_reduce_sum(acc, d)  # global means over the effective batch
                grad_norm = total_grad_norm(params)  # clipped inside the optimizer step below
                values = torch.cat([acc, grad_norm.detach().float().reshape(1).to(acc.device)]).tolist()  # one sync per step
                loss_value, grad_value = values[0], values[-1]
                parts = {name: values[j] for j, name in enumerate(names, start=1) if values[j] != 0.0}
                lr = self.lr_at(self.step, time.perf_counter() - start_wall)
                if not (math.isfinite(loss_value) and math.isfinite(grad_value)):
                    resident.zero_grad(optimizer)
                    if c.on_nonfinite == "skip":
                        self.skipped += 1
                        self._log(metrics_file, writer, {"step": self.step, "skipped_nonfinite": self.skipped,
                                                         "loss": loss_value})
                        if self.skipped >= 100:
                            raise NonFiniteLoss(f"the loss was NaN/inf on {self.skipped} steps; training has "
                                                "diverged — lower the learning rate (--lr)")
                        continue
                    good = ckpt.latest_checkpoint(self.out_dir, verify=False) if d.is_main else None
                    raise NonFiniteLoss(
                        f"the loss became {loss_value} at step {self.step + 1}; stopped without updating the weights. "
                        f"The last good checkpoint is {good or 'none (nothing saved yet)'}. Lower the learning rate "
                        "(--lr), raise warmup, or pass --set train.on_nonfinite=skip to skip such steps")
                for group in optimizer.param_groups:
                    group["lr"] = lr
                clipped_step(optimizer, params, grad_norm, c.clip_norm)
                resident.zero_grad(optimizer)
                self.step += 1
                window["loss"] += loss_value
                window["n"] += 1
                for k, v in parts.items():
                    window["extra"][k] = window["extra"].get(k, 0.0) + v
                if bar is not None:
                    self._update_bar(bar, loss_value, window, time.perf_counter() - start_wall)
                if c.log_every and self.step % c.log_every == 0:
                    if d.is_main:
                        record = self._flush_window(metrics_file, writer, window, lr, grad_value,
                                                    time.perf_counter() - start_wall)
                        self._status_line(bar, record, started)
                    if trim is not None:
                        trim()
                if c.eval_every and self.step % c.eval_every == 0 and self.evaluate_fn is not None:
                    last_eval = self._run_eval(model, metrics_file, writer, time.perf_counter() - start_wall)
                if save_due or (c.save_every and self.step % c.save_every == 0):
                    self._save(model, optimizer, time.perf_counter() - start_wall, window)
                    last_save = time.perf_counter()
                if self._stop_signal is not None:
                    stop_reason = f"signal {self._stop_signal}"
                    break
            # ---- end of training
            self.elapsed = time.perf_counter() - start_wall
            if window["n"] and d.is_main:
                record = self._flush_window(metrics_file, writer, window, self.lr_at(self.step, self.elapsed), None,
                                            self.elapsed)
                self._status_line(bar, record, started)
            if self.evaluate_fn is not None and stop_reason not in ("stop_after",) and not stop_reason.startswith("signal"):
                if not (c.eval_every and self.step % c.eval_every == 0 and last_eval):
                    last_eval = self._run_eval(model, metrics_file, writer, self.elapsed)
            final = self._save(model, optimizer, self.elapsed)
        finally:
            close = getattr(data, "close", None)  # a generator; a prefetching source stops its thread there
            if close is not None:
                close()
            resident.__exit__(None, None, None)
            self._restore_signal_handlers(handlers)
            if bar is not None:
                bar.close()
            if metrics_file is not None:
                metrics_file.close()
            if writer is not None:
                writer.close()
        summary = {"step": self.step, "elapsed_s": round(self.elapsed, 2), "tokens_seen": self.tokens_seen,
                   "stop_reason": stop_reason, "checkpoint": str(final) if final else None,
                   **{f"eval_{k}" if not k.startswith("eval_") else k: v for k, v in last_eval.items()}}
        if stop_reason.startswith("signal"):
            summary["resume_hint"] = "stopped by a signal; continue with the same command plus --resume"
        distr.barrier(d)
        return summary

    # ------------------------------------------------------------------ helpers
    def _should_stop(self, elapsed: float) -> bool:
        return self._stop_reason(elapsed) is not None

    def _stop_reason(self, elapsed: float) -> str | None:
        c = self.config
        if c.stop_after is not None and self.step >= c.stop_after:
            return "stop_after"
        if self.max_steps is not None and self.step >= self.max_steps:
            return "max_steps"
        if c.max_time is not None and elapsed >= c.max_time:
            return "max_time"
        return None

    def _save(self, model: nn.Module, optimizer: torch.optim.Optimizer, elapsed: float,
              window: dict[str, Any] | None = None) -> Path | None:
        d = self.dist
        rng = ckpt.rng_state()
        # Every rank's RNG matters for exact resume; gather them through files written by each rank.
        if d.enabled:
            tmp_rng = self.out_dir / f".rng-rank{d.rank}.safetensors"
            from safetensors.torch import save_file

            save_file(rng, str(tmp_rng))
        distr.barrier(d)
        path = None
        if d.is_main:
            rank_rng = {0: rng}
            if d.enabled:
                from safetensors.torch import load_file

                for r in range(1, d.world_size):
                    rank_rng[r] = load_file(str(self.out_dir / f".rng-rank{r}.safetensors"))
            state = {"data": self.train_source.state_dict(), "elapsed_s": elapsed, "tokens_seen": self.tokens_seen,
                     "skipped_steps": self.skipped, "train_config": dataclasses.asdict(self.config),
                     "run_config": self.run_config, "world_size": d.world_size}
            if window is not None and window["n"]:
                state["log_window"] = {"loss": window["loss"], "n": window["n"], "extra": dict(window["extra"])}
            path = ckpt.save_checkpoint(self.out_dir, self.step, model, optimizer, state, tokenizer=self.tokenizer,
                                        rank_rng=rank_rng, keep_last=self.config.keep_last,
                                        model_extra=self.model_extra)
        distr.barrier(d)
        if d.enabled:
            (self.out_dir / f".rng-rank{d.rank}.safetensors").unlink(missing_ok=True)
        return path

    def _run_eval(self, model: nn.Module, metrics_file, writer, elapsed: float) -> dict[str, float]:
        d = self.dist
        result: dict[str, float] = {}
        if d.is_main:
            was_training = model.training
            model.eval()
            with torch.no_grad():
                result = dict(self.evaluate_fn(model))
            model.train(was_training)
            record = {"step": self.step, "elapsed_s": round(elapsed, 2),
                      **{(k if k.startswith("eval_") else f"eval_{k}"): v for k, v in result.items()}}
            self._log(metrics_file, writer, record)
            self.history.append(record)
        distr.barrier(d)
        return result

    def _flush_window(self, metrics_file, writer, window: dict, lr: float, grad_norm: float | None,
                      elapsed: float) -> dict[str, Any]:
        dt = time.perf_counter() - window["t0"]
        n = max(window["n"], 1)
        record: dict[str, Any] = {"step": self.step, "loss": window["loss"] / n, "lr": lr,
                                  "tokens_per_s": window["tokens"] / max(dt, 1e-9),
                                  "elapsed_s": round(elapsed, 3)}
        for k, v in window["extra"].items():
            record[k] = v / n
        if grad_norm is not None:
            record["grad_norm"] = grad_norm
        if self.steps_per_epoch:
            record["epoch"] = round(self.step * self.config.grad_accum / self.steps_per_epoch, 4)
        self._log(metrics_file, writer, record)
        self.history.append(record)
        window.update(loss=0.0, n=0, tokens=0, t0=time.perf_counter(), extra={})
        return record

    def _log(self, metrics_file, writer, record: dict[str, Any]) -> None:
        if metrics_file is not None:
            metrics_file.write(json.dumps(record) + "\n")
            metrics_file.flush()
        if writer is not None:
            for k, v in record.items():
                if k != "step" and isinstance(v, (int, float)):
                    writer.add_scalar(k if "/" in k else ("eval/" + k[5:] if k.startswith("eval_") else "train/" + k),
                                      v, record["step"])

    def _tensorboard(self):
        if not self.config.tensorboard:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            warnings.warn("tensorboard is not installed; TensorBoard logging is off (pip install tensorboard)")
            return None
        return SummaryWriter(log_dir=str(self.out_dir / "tb"))

    def _progress_bar(self):
        """A bar on a terminal, plain status lines (one per log line) in a log, nothing with progress off
        (plmkit._progress: the same rule for every command)."""
        from .._progress import Progress

        if self.max_steps is not None:
            return Progress(total=self.max_steps, initial=self.step, desc="train", unit="step",
                            enabled=self.config.progress, every_s=None)
        return Progress(total=int(self.config.max_time or 0), initial=int(self.elapsed), desc="train", unit="s",
                        enabled=self.config.progress, every_s=None,
                        bar_format="{l_bar}{bar}| {n:.0f}/{total}s [{elapsed}<{remaining}{postfix}]")

    def _update_bar(self, bar, loss: float, window: dict, elapsed: float) -> None:
        dt = time.perf_counter() - window["t0"]
        tps = window["tokens"] / max(dt, 1e-9)  # tokens of every rank
        if self.max_steps is not None:
            bar.update(1)
        else:
            bar.update(max(0, int(elapsed) - bar.n))
        bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{tps:,.0f}")

    def _status_line(self, bar, record: dict[str, Any], started: tuple[int, float]) -> None:
        """The plain status line of a log (not a terminal): step, loss, tokens/s, elapsed and ETA."""
        if bar is None or bar.mode != "lines":
            return
        elapsed = float(record.get("elapsed_s", self.elapsed))
        step0, t0 = started  # this process's first step and its clock: the rate excludes earlier attempts
        eta = None
        if self.config.max_time is not None and (self.max_steps is None or self.config.max_steps is None):
            eta = max(0.0, self.config.max_time - elapsed)
        if self.max_steps is not None and self.step > step0:
            by_steps = (self.max_steps - self.step) * (time.perf_counter() - t0) / (self.step - step0)
            eta = by_steps if eta is None else min(eta, by_steps)
        head = f"step {self.step}" + (f"/{self.max_steps}" if self.max_steps is not None else "")
        fields = {"loss": f"{record['loss']:.4f}", "tok/s": f"{record['tokens_per_s']:,.0f}"}
        if "epoch" in record:
            fields["epoch"] = f"{record['epoch']:.2f}"
        bar.line(head, elapsed=elapsed, eta=eta, **fields)

    def _install_signal_handlers(self):
        if self.dist.enabled:  # under torchrun the launcher owns signals; ranks must stop at the same step
            return {}
        previous = {}

        def handler(signum, frame):
            if self._stop_signal is not None:  # second signal: stop now
                raise KeyboardInterrupt
            self._stop_signal = signum
            print(f"\nplmkit: received signal {signum}; saving a checkpoint after this step "
                  "(send again to stop immediately)", file=sys.stderr)

        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread
            return {}
        return previous

    def _restore_signal_handlers(self, previous) -> None:
        for sig, h in previous.items():
            signal.signal(sig, h)
