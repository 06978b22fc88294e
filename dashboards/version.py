"""The Grafana the dashboards are built for, in one place.

``docker-compose.yml`` deploys ``grafana/grafana-oss:GRAFANA_VERSION``; ``pyproject.toml``
pins the Foundation SDK build generated from that version's schemas (``SDK_BUILD``), and
``make check`` validates the built JSON against ``@grafana/schema@GRAFANA_VERSION``.
tests/test_grafana_version.py holds the three to this constant.
"""

from __future__ import annotations

GRAFANA_VERSION = "11.6.0"
SDK_BUILD = f"1769699379!{GRAFANA_VERSION}"
TYPESCRIPT_VERSION = "5.8.3"
