"""Text -> vocabulary -> ids: reading text safely, the corpus cache, corpora of many files,
and the batches the training loop and the scorers read. numpy only, never torch.

    text.py       reading UTF-8 text safely; the character ``Vocab``
    encoding.py   UTF-8 in blocks -> ids, in bounded memory
    cachedir.py   the cache folder: entries, opening, the size cap
    cache.py      one text file encoded once into a memory-mapped id file
    corpora.py    many files and folders joined into one cached corpus
    inputs.py     stdin and named pipes kept in the run folder; what changed since
    corpus.py     ``Corpus``: a training text split into training and held-out ids
    batches.py    truncated-BPTT batches; evaluation streams with burn-in
"""
