"""The shell's side of Grafana: the dashboards (and their alerts) in a language of the
reports' translation table.

``dashboards`` may not import the shell, so the words travel as an argument: this module
looks the language up in ``kcity.reports.i18n`` (the one table the reports also read) and
hands the mapping to the builders. The provisioned set is Korean, the ministry's language.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dashboards import alerts, build
from kcity.errors import KcityError
from kcity.reports.i18n import LANGS, labels

DEFAULT_LANG = "ko"

__all__ = ["DEFAULT_LANG", "LANGS", "alerting", "build_all", "write", "write_alerting"]


def _labels(lang: str) -> dict[str, str]:
    if lang not in LANGS:
        raise KcityError(f"unknown language {lang!r}: use one of {', '.join(LANGS)}")
    return dict(labels(lang))


def build_all(lang: str = DEFAULT_LANG) -> dict[str, dict[str, Any]]:
    """Every dashboard in ``lang``, uid → Grafana JSON."""
    return build.build_all(_labels(lang))


def write(out_dir: Path, lang: str = DEFAULT_LANG) -> list[Path]:
    """Write every dashboard in ``lang`` to ``out_dir``."""
    return build.write(out_dir, _labels(lang))


def _texts(lang: str) -> dict[str, dict[str, str]]:
    """Every language's labels, ``lang`` first (alert messages carry all of them)."""
    _labels(lang)
    return {code: dict(labels(code)) for code in (lang, *[c for c in LANGS if c != lang])}


def alerting(lang: str = DEFAULT_LANG) -> dict[str, Any]:
    """The alerting provisioning document, titles in ``lang``, messages in every language."""
    return alerts.provisioning(lang, _texts(lang))


def write_alerting(out_dir: Path, lang: str = DEFAULT_LANG) -> Path:
    """Write the alerting provisioning file to ``out_dir``."""
    return alerts.write(out_dir, lang, _texts(lang))
