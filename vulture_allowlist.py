"""Names vulture (the dead-code check in .ci/run) cannot see being used.

Each line names a use that happens outside plain Python calls.
"""

__signature__  # cli/common.py: read by Typer (inspect.signature) to build train and sample
__annotations__  # cli/common.py: read by Typer (get_type_hints) likewise
sig  # model/infer.py: a view whose in-place *= and += update the LSTM gates
frame  # train/signals.py: the signal-handler signature Python calls with
is_novel  # api.py: Model.is_novel, public Python API (tests/test_novelty.py)
handle_exit  # serve/runner.py: overrides uvicorn.Server.handle_exit (its signal handler)
force_exit  # serve/runner.py: read by uvicorn.Server's shutdown
matched  # generate/automaton.py: Automaton.matched, read by tests/test_steer.py (the automaton's language against re.fullmatch)
