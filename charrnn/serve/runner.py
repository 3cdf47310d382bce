"""Start the server: find the models, load the default one, run uvicorn until signalled.

SIGTERM (or Ctrl+C) stops accepting connections, lets the streams in flight finish
within the grace period, then exits with status 0: uvicorn's own handler would re-raise
the signal after a clean shutdown, which makes a graceful stop look like a crash.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import signal
import sys
from types import FrameType

from charrnn.config import ServeConfig
from charrnn.errors import CharRNNError

log = logging.getLogger("charrnn.serve")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(config: ServeConfig) -> None:
    """Serve until SIGTERM/SIGINT; returns normally after a graceful stop."""
    try:
        import uvicorn
    except ImportError:
        raise CharRNNError("serving needs the serve extra: pip install "
                           "'charrnn[serve]'") from None
    from charrnn.serve.app import Limits, create_app
    from charrnn.serve.models import Models

    logging.basicConfig(stream=sys.stderr, level=config.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    models = Models(config.root, config.target)
    name, _ = models.get(None)  # fail now on a bad checkpoint, and answer at once later
    log.info("serving %d model(s) (default %s): %s", len(models.names()), name,
             ", ".join(models.names()[:20]))
    if not is_loopback(config.host) and config.api_key is None:
        print(f"charrnn: warning: serving on {config.host} without an API key: anyone who "
              "can reach this address can use it (set --api-key or CHARRNN_API_KEY)",
              file=sys.stderr, flush=True)
    app = create_app(models, Limits(config.max_streams, config.max_chars, config.api_key))

    class _Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            # A second Ctrl+C forces the exit; otherwise drain and exit 0 (not re-raised).
            if self.should_exit and sig == signal.SIGINT:
                self.force_exit = True
            self.should_exit = True

    server = _Server(uvicorn.Config(app, host=config.host, port=config.port, log_config=None,
                                    access_log=False,
                                    timeout_graceful_shutdown=math.ceil(config.grace),
                                    lifespan="on", log_level=config.log_level))
    try:
        server.run()
    except SystemExit as e:  # uvicorn exits 3 when it cannot listen (logged just above)
        if e.code:
            raise CharRNNError(f"cannot serve on {config.host}:{config.port}: the address "
                               "is in use or not available here") from None
        raise
