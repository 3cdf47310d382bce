"""Each test starts from the same seeds and torch thread count (tests/conftest.py)."""

import random

import numpy as np
import pytest
import torch

from tests.conftest import SEED, TORCH_THREADS


@pytest.mark.parametrize("run", ["first", "second"])
def test_each_test_starts_from_fixed_seeds_and_threads(run):
    assert random.random() == random.Random(SEED).random()
    assert np.random.random() == np.random.RandomState(SEED).random_sample()
    fresh = torch.Generator().manual_seed(SEED)
    assert torch.rand(3).tolist() == torch.rand(3, generator=fresh).tolist()
    assert torch.get_num_threads() == TORCH_THREADS
    # disturb all of it: the next run must start from the fixed state again
    torch.set_num_threads(TORCH_THREADS + 1)
    random.random(), np.random.random(), torch.rand(1)
