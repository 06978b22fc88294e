"""Errors of the ``ingest`` package, so the shell can catch one base class.

Tree::

    IngestError
    ├── ConfigError       an IngestConfig value the service cannot run with
    └── BrokerRefused     the broker refused the ingest account (bad credentials, ACL)

Bad messages are *not* errors: validation turns them into ``DeadLetter`` records, and a
database outage is waited out (the batch is kept, nothing is acknowledged).
"""

from __future__ import annotations


class IngestError(Exception):
    """Base class of every error raised by the ``ingest`` package."""


class ConfigError(IngestError, ValueError):
    """A configuration value the service cannot run with."""


class BrokerRefused(IngestError):
    """The broker refused the ingest service's connection (credentials or ACL)."""
