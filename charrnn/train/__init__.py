"""Training: the train command from options to a finished run.

    options.py       ``TrainOptions``: every train option, declared once (no torch)
    command.py       the train command's work: options -> configs, fresh run, resume, fine-tune
    loop.py          ``Trainer``: the truncated-BPTT loop and validation (torch)
    checkpoints.py   what training saves and reads back to resume (torch)
    events.py        what the loop reports, and the callbacks a front end implements
    record.py        what the loop writes down: metrics lines (gradient norm, share clipped)
    tensorboard.py   --tensorboard: the metrics log mirrored as TensorBoard events
    progress.py      progress on stderr
    preview.py       samples while it trains
    finetune.py      ``--init-from``: another model's weights, the vocabulary grown
    probe.py         timing training steps: the model size a time budget affords (torch)
    distributed.py   data-parallel training under torchrun
    signals.py       Ctrl-C, SIGTERM, a closed terminal: finish the step, save, stop
"""
