"""`python -m gateway`: read JUNE_GATEWAY_* settings and serve the gateway until stopped."""

from __future__ import annotations

from core.observability import configure_logging, setup
from core.web import serve
from gateway.app import create_app
from gateway.settings import GatewaySettings


def main(settings: GatewaySettings | None = None) -> None:
    """Serve the gateway with `settings` (default: from the environment) until SIGINT/SIGTERM.

    Spans go to OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set; JUNE_LOG_JSON=1 logs JSON lines.
    """
    settings = settings or GatewaySettings()
    configure_logging()
    telemetry = setup("gateway")
    try:
        serve(create_app(settings, telemetry=telemetry), settings.host, settings.port, access_log=settings.access_log)
    finally:
        telemetry.shutdown()


if __name__ == "__main__":
    main()
