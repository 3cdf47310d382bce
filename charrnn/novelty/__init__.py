"""Copies of the training text: is the model writing or copying? numpy only, never torch.

    suffixarray.py   a corpus's suffix array, built once and kept beside the id cache
    index.py         ``Index``: longest copies, copied share, "does this text occur?"
    source.py        the index of a checkpoint's training text (recorded paths are hints)
    filter.py        ``CopyFilter``: which samples to keep (no numpy: read at start-up)
    sieve.py         samples drawn, checked and kept, drawing again until enough pass
"""
