"""Runs on disk: the checkpoint format, the run folder's layout, its lock and its metrics
log. numpy only, never torch.

    checkpoint.py   one safetensors file per checkpoint, metadata as JSON in its header
    folder.py       a run folder's files, and how commands find a run or checkpoint
    lock.py         one training run per run folder
    metrics.py      metrics.jsonl: appended while training, read by the report
"""
