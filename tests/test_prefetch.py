"""Batches built ahead in a thread (plmkit.training.prefetch): the same batches, the same resume positions
as iterating the stream itself, errors at their batch, and no thread left behind."""

from __future__ import annotations

import threading

import pytest
import torch

from plmkit.data.objectives import DataConfig, PretrainingStream
from plmkit.errors import DataError
from plmkit.training.prefetch import Prefetch

from test_objectives import ListCorpus, synthetic_documents, tiny_tokenizer


def stream(seed: int = 0, batch_size: int = 8) -> PretrainingStream:
    corpus = ListCorpus(synthetic_documents(4, 5, 300, seed=4), tiny_tokenizer("bert"))
    return PretrainingStream(corpus, DataConfig(max_length=32, masking="dynamic"), batch_size=batch_size, seed=seed)


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "plmkit-prefetch"]


@pytest.mark.parametrize("depth", [1, 3])
def test_same_batches_and_positions_as_the_stream_itself_across_epochs(depth):
    direct, wrapped = stream(), Prefetch(stream(), depth=depth)
    per_epoch = direct.steps_per_epoch()
    assert per_epoch < 10  # the run below crosses two epoch boundaries
    it_direct, it_wrapped = iter(direct), iter(wrapped)
    assert wrapped.state_dict() == direct.state_dict()
    epochs = set()
    for _ in range(2 * per_epoch + 3):
        assert same(next(it_wrapped), next(it_direct))
        # The thread has built batches ahead, but the position is that of the batches taken.
        assert wrapped.state_dict() == direct.state_dict()
        epochs.add(wrapped.state_dict()["epoch"])
    assert epochs == {0, 1, 2}
    it_wrapped.close()
    assert prefetch_threads() == []


def test_a_checkpointed_position_resumes_at_the_first_batch_not_taken():
    wrapped = Prefetch(stream(), depth=4)
    it = iter(wrapped)
    taken = [next(it) for _ in range(5)]
    saved = wrapped.state_dict()
    following = [next(it) for _ in range(3)]
    it.close()
    # A new run loads the position (before iterating, as the trainer does) and continues from there.
    resumed = Prefetch(stream(), depth=2)
    resumed.load_state_dict(saved)
    again = iter(resumed)
    assert all(same(next(again), b) for b in following)
    again.close()
    # Closed, the wrapped stream stands where the batches taken leave it, not where the thread had got to.
    assert wrapped.source.state_dict() == {**saved, "offset": saved["offset"] + 3 * 8}
    direct = iter(stream())
    assert all(same(next(direct), b) for b in taken)


def test_an_error_while_building_reaches_the_loop_at_its_batch():
    class Failing:
        def __init__(self):
            self.served = 0

        def __iter__(self):
            while True:
                if self.served == 3:
                    raise DataError("corpus.bin: shard 2 is damaged")
                self.served += 1
                yield {"x": torch.tensor([self.served])}

        def state_dict(self):
            return {"served": self.served}

        def load_state_dict(self, state):
            self.served = state["served"]

    wrapped = Prefetch(Failing(), depth=2)
    it = iter(wrapped)
    assert [int(next(it)["x"]) for _ in range(3)] == [1, 2, 3]
    with pytest.raises(DataError, match="shard 2 is damaged"):
        next(it)
    assert wrapped.state_dict() == {"served": 3}
    assert prefetch_threads() == []


def test_a_finite_source_ends_the_loop():
    class Three:
        def __iter__(self):
            yield from ({"x": torch.tensor([i])} for i in range(3))

        def state_dict(self):
            return {}

        def load_state_dict(self, state):
            pass

    assert [int(b["x"]) for b in Prefetch(Three())] == [0, 1, 2]
    assert prefetch_threads() == []


def test_misuse_is_refused_and_attributes_are_the_streams():
    wrapped = Prefetch(stream(batch_size=4))
    assert wrapped.batch_size == 4 and wrapped.num_instances(0) == wrapped.source.num_instances(0)
    it = iter(wrapped)
    next(it)
    with pytest.raises(RuntimeError, match="before iterating"):
        wrapped.load_state_dict({"epoch": 0, "offset": 0})
    with pytest.raises(RuntimeError, match="one loop at a time"):
        next(iter(wrapped))
    it.close()
    with pytest.raises(ValueError, match="depth"):
        Prefetch(stream(), depth=0)
