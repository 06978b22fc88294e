"""The HTTP API (DESIGN §8): FastAPI under `/api/v1`, bearer tokens with roles.

app.py               create_app(settings): routes, pool, errors, metrics, /health
auth.py              tokens → Caller (role, pilot); the role × action table
deps.py              pooled connection and settings for the routes
errors.py            exceptions → 4xx/503, `{"detail": ...}` bodies
params.py            evaluation window and id checks shared by the routes
metrics.py           Prometheus request counters at /metrics
routes_pilots.py     pilots, devices (list, provision, revoke)
routes_telemetry.py  raw readings and events, keyset-paged
routes_analytics.py  savings, coverage, quality (the CLI's --json bodies)
routes_reports.py    report download (PDF, HTML)
"""

from kcity.api.app import create_app

__all__ = ["create_app"]
