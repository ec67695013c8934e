"""Metrics: where the daemon serves its Prometheus metrics (off unless this section is given)."""

from __future__ import annotations

from gateway.config.sections.common import HostPort, StrictModel, split_host_port

DEFAULT_METRICS_LISTEN = "127.0.0.1:9464"  # 9464: the port commonly given to such exporters


class MetricsSettings(StrictModel):
    # host:port of the HTTP server whose /metrics Prometheus scrapes; loopback by default, as
    # the metrics name the site's ports and patches: a wider address is the operator's choice.
    listen: HostPort = DEFAULT_METRICS_LISTEN

    @property
    def host(self) -> str:
        return split_host_port(self.listen)[0]

    @property
    def port(self) -> int:
        return split_host_port(self.listen)[1]
