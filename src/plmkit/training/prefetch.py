"""Batches built ahead in a background thread, so that building and masking overlap the training step.

:class:`Prefetch` wraps a resumable batch source (:class:`plmkit.training.trainer.BatchSource`, e.g. the
pretraining stream) and serves the same batches in the same order. While the model trains on one batch, a
thread builds the next ``depth`` of them (reading the memory-mapped shards, packing rows, masking): the
step's forward and backward passes run in PyTorch's kernels with the interpreter released, so the two
proceed side by side and the step no longer waits for its batch.

What makes it safe to put in front of a run that must resume bit for bit:

* the source is advanced only by the thread, and after each batch the thread records the source's
  ``state_dict()`` — the position *after* that batch. :meth:`Prefetch.state_dict` returns the position
  after the last batch the trainer has *taken*, never the thread's look-ahead, so a checkpoint written
  while batches wait in the queue resumes at the first batch not yet trained on;
* the batches do not depend on when they are built: the pretraining stream's masks and orders are
  counter-based (a function of seed, epoch and row), and building a batch draws nothing from torch's
  generator, so dropout draws and every other random number are unchanged;
* an exception raised while building (a data error) reaches the trainer at the batch where it would have
  been raised without the thread, with its own type and message;
* closing the iterator (the trainer does when training ends) stops the thread and puts the source back
  at the position after the last batch served, as if it had been iterated directly.
"""

from __future__ import annotations

import copy
import queue
import threading
from typing import Any, Iterator, Mapping

_DONE = object()  # the source ended
_FAILED = object()  # building a batch raised; the exception follows


class Prefetch:
    """Serve ``source``'s batches, built ``depth`` ahead by a background thread (see the module docstring).

    ``state_dict`` / ``load_state_dict`` are the source's, taken at the last batch served; load a state
    before iterating. Other attributes (``batch_size``, ``num_instances``, …) are the source's.
    """

    def __init__(self, source: Any, depth: int = 2):
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        self.source = source
        self.depth = int(depth)
        self._state: Mapping[str, Any] | None = None  # the source's position after the last batch served
        self._running = False

    def __getattr__(self, name: str) -> Any:
        if name == "source":  # not set yet (during unpickling or a failed __init__)
            raise AttributeError(name)
        return getattr(self.source, name)

    def state_dict(self) -> dict:
        if self._state is None:  # nothing served yet: the source has not moved
            return self.source.state_dict()
        return copy.deepcopy(dict(self._state))

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if self._running:
            raise RuntimeError("Prefetch.load_state_dict while batches are being served; load the state before "
                               "iterating")
        self.source.load_state_dict(state)
        self._state = None

    def __iter__(self) -> Iterator[Any]:
        if self._running:
            raise RuntimeError("a Prefetch is iterated by one loop at a time")
        self._running = True
        start = self.source.state_dict()
        items: queue.Queue = queue.Queue(maxsize=self.depth)
        stop = threading.Event()
        thread = threading.Thread(target=self._produce, args=(items, stop), name="plmkit-prefetch", daemon=True)
        thread.start()
        try:
            while True:
                item, extra = items.get()
                if item is _DONE:
                    return
                if item is _FAILED:
                    raise extra
                self._state = extra
                yield item
        finally:
            stop.set()
            while thread.is_alive():  # let a producer blocked on a full queue see the stop
                try:
                    items.get_nowait()
                except queue.Empty:
                    pass
                thread.join(timeout=0.05)
            # The thread ran ahead: the source goes back to where the batches served leave it.
            self.source.load_state_dict(self._state if self._state is not None else start)
            self._running = False

    def _produce(self, items: queue.Queue, stop: threading.Event) -> None:
        def put(item: Any, extra: Any) -> bool:
            while not stop.is_set():
                try:
                    items.put((item, extra), timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        try:
            for batch in self.source:
                # The position after this batch, copied now: the source moves on while the batch waits.
                if not put(batch, copy.deepcopy(self.source.state_dict())):
                    return
        except BaseException as e:  # noqa: BLE001 - re-raised in the consuming thread
            put(_FAILED, e)
            return
        put(_DONE, None)


__all__ = ["Prefetch"]
