"""``charrnn serve``: an OpenAI-compatible completion server with continuous batching.

engine.py steps all live streams of a model as one batch; models.py names the runs and
reloads replaced checkpoints; protocol.py checks requests and shapes responses; app.py
holds the HTTP routes; runner.py starts uvicorn. Needs the ``serve`` extra; torch is
never imported.
"""
