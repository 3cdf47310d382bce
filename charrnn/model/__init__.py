"""The model, twice: torch's fused layers for training and scoring, and a numpy twin of the
same equations for sampling one character at a time without torch.

    network.py   ``CharRNN`` (torch): embedding -> LSTM/GRU/RNN -> dropout -> head;
                 loading a checkpoint into it
    infer.py     ``NumpyRNN``: the cells written out in numpy (no torch)
    device.py    the device and the autocast precision (torch)
"""
