"""Scoring: how well a model predicts text, statically and with dynamic evaluation.

    measures.py   nats, bits per character, perplexity (a leaf: no torch, no numpy)
    texts.py      which text eval scores: a file, or the held-out split as validated
    loss.py       the loss of a text under the torch model (torch)
    adapt.py      dynamic evaluation: the model keeps learning as it scores (torch)
    evaluate.py   the eval command's work (torch)
    gradients.py  gradient flow through time: dL_t / dh_{t-k} per layer (torch)
    context.py    how far back the model looks; nanoGPT's windowed protocol (torch)
    flow.py       the gradients command's work (torch)
"""
