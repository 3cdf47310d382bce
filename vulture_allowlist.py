"""Names vulture (the dead-code check in .ci/run) cannot see being used.

Each line names a use that happens outside plain Python calls.
"""

_root  # cli.py: the Typer app's callback (--version), registered by a decorator
eval_  # cli.py: the eval command, registered by @app.command("eval")
list_  # commands.py: the list command, registered by @app.command("list")
cache_  # commands.py: the cache command, registered by @app.command("cache")
__signature__  # cli.py: read by Typer (inspect.signature) to build the train command
__annotations__  # cli.py: read by Typer (get_type_hints) likewise
sig  # infer.py: a view whose in-place *= and += update the LSTM gates
frame  # signals.py: the signal-handler signature Python calls with
is_novel  # api.py: Model.is_novel, public Python API (tests/test_novelty.py)
handle_exit  # serve/runner.py: overrides uvicorn.Server.handle_exit (its signal handler)
force_exit  # serve/runner.py: read by uvicorn.Server's shutdown
