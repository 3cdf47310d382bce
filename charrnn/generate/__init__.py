"""Generation: the decoding controls, choosing each next character, and the sampler that
feeds it back in. numpy only, never torch.

    decoding.py   ``Decoding`` (every sampling control, declared once) and ``SampleConfig``
    pick.py       the next character from the logits, as the controls say
    sampler.py    ``Sampler``: a checkpoint generating; samples rendered as text or JSON lines
"""
