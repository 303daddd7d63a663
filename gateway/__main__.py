"""`python -m gateway`: read JUNE_GATEWAY_* settings and serve the gateway until stopped."""

from __future__ import annotations

import logging

from gateway.app import create_app
from gateway.settings import GatewaySettings
from june.web import serve


def main(settings: GatewaySettings | None = None) -> None:
    """Serve the gateway with `settings` (default: from the environment) until SIGINT/SIGTERM."""
    settings = settings or GatewaySettings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve(create_app(settings), settings.host, settings.port)


if __name__ == "__main__":
    main()
