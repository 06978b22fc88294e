"""Grafana dashboards as code: built with Grafana's Foundation SDK, written as JSON for file
provisioning, and pushed to a running Grafana over its HTTP API.

The dashboards meet the rest of the project only at the database schema: their SQL reads
the hypertables and the persisted analytics results, never the ``ingest`` or ``analytics``
code.
"""
