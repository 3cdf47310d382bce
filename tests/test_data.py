import numpy as np
import pytest

from charrnn.data.batches import Batches, EvalStreams
from charrnn.data.corpus import split_ids
from charrnn.errors import CharRNNError


def test_targets_are_inputs_shifted_and_streams_contiguous():
    ids = np.arange(1000, dtype=np.uint16)  # id == position: easy to check
    b = Batches(ids, batch_size=4, seq_len=16, offset=3)
    xs, ys = zip(*(b.chunk(i) for i in range(len(b))), strict=True)
    x, y = np.concatenate(xs, axis=1), np.concatenate(ys, axis=1)
    assert x.dtype == np.int64 and x.shape == (4, b.stream_len)
    assert (y == x + 1).all()  # next character
    assert (np.diff(x, axis=1) == 1).all()  # each stream continues across chunk edges
    assert x[0, 0] == 3 and (x[1:, 0] - x[:-1, -1] == 1).all()  # streams tile the text
    assert all(c[0].shape[1] == 16 for c in (b.chunk(i) for i in range(len(b) - 1)))


def test_batches_keep_compact_dtype_and_refuse_short_text():
    ids = np.zeros(100, np.uint8)
    assert Batches(ids, 2, 8)._x.base is not None  # a view, not an int64 copy
    with pytest.raises(CharRNNError, match="too short"):
        Batches(ids[:5], batch_size=8, seq_len=4)


@pytest.mark.parametrize("n", [2, 3, 50, 999, 5000])
@pytest.mark.parametrize("streams, burn", [(1, 0), (7, 5), (32, 128)])
def test_eval_streams_score_every_target_once_in_order(n, streams, burn):
    ids = (np.arange(n) % 97).astype(np.uint8)
    es = EvalStreams.build(ids, streams, burn)
    assert es.mask.sum() == n - 1
    assert (es.y[es.mask] == ids[1:]).all()
    assert (es.x[:, 1:] == es.y[:, :-1])[es.mask[:, 1:]].all()


def test_split_holds_out_the_tail():
    ids = np.arange(100, dtype=np.uint8)
    train, val = split_ids(ids, 0.1)
    assert len(val) == 10 and val[0] == 90 and len(train) == 90
    with pytest.raises(CharRNNError, match="too short"):
        split_ids(ids[:10], 0.1)
