"""Grafana alerting as code: the rules, the contact point and the notification policy,
written as one file-provisioning document (``deploy/grafana/provisioning/alerting``).

Each rule is a SQL query (dashboards/alert_sql.py) → ``last`` per series → a threshold.
Messages name the pilot, the device (or segment, or worker) and the figure, in the
language the set is built in and, beside it, in every other language given: the ministry
reads Korean, the firms and evaluators English. Addresses come from environment variables
that Grafana expands when it loads the file (annotations and queries are not expanded, so
the ``$labels``/``$values`` of the message templates are safe).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dashboards import alert_sql
from dashboards.errors import WriteError
from dashboards.panels import Labels
from dashboards.sql import DATASOURCE_TYPE, DATASOURCE_UID, dedent_sql

FILE = "kcity-alerting.yaml"
FOLDER = "K-City"
GROUP = "kcity-pilots"
INTERVAL = "5m"
CONTACT_POINT = "K-City ministry"
EMAILS_ENV = "ALERT_EMAILS"  # set on the grafana service by docker-compose.yml
WEBHOOK_ENV = "ALERT_WEBHOOK_URL"
EXPR = "__expr__"


@dataclass(frozen=True)
class Rule:
    """One alert rule: what it queries, when it fires, how it is told."""

    uid: str
    key: str  # alert_<key>_title / alert_<key>_summary in the translation table
    sql: str
    evaluator: str  # gt or lt
    threshold: float
    severity: str
    lookback_s: int  # the query's time range (its $__timeTo() is the evaluation time)
    pending: str = "0s"
    figure: str = ""  # the numeric column the threshold judges
    per_pilot: bool = True  # rows carry a ``pilot`` column (the portfolio counts them)

    def firing_sql(self) -> str:
        """The query's rows that fire: its figure beyond the threshold."""
        op = ">" if self.evaluator == "gt" else "<"
        return f"SELECT * FROM ({self.sql}) q WHERE q.{self.figure} {op} {self.threshold}"


RULES: tuple[Rule, ...] = (
    Rule(
        "kcity-device-silent", "device_silent", alert_sql.DEVICE_SILENT, "gt", 0, "warning", 600,
        figure="silent_min",
    ),
    Rule(
        "kcity-pilot-no-data", "pilot_no_data", alert_sql.PILOT_NO_DATA, "gt", 60, "critical",
        600, figure="minutes_since_data",
    ),
    Rule(
        "kcity-completeness-yesterday", "completeness", alert_sql.COMPLETENESS_YESTERDAY, "lt",
        90, "warning", 172800, figure="completeness_pct",
    ),
    Rule(
        "kcity-lamp-faults", "lamp_faults", alert_sql.LAMP_FAULTS, "gt", 0, "warning", 2592000,
        figure="active_faults",
    ),
    Rule(
        "kcity-day-burning", "day_burning", alert_sql.DAY_BURNING, "gt", 0, "warning", 86400,
        figure="hours_lit_by_day",
    ),
    Rule(
        "kcity-border-uncovered", "border_uncovered", alert_sql.BORDER_UNCOVERED, "gt", 0,
        "critical", 86400, figure="uncovered_min",
    ),
    Rule(
        "kcity-dead-letter-spike", "dead_letters", alert_sql.DEAD_LETTER_SPIKE, "gt", 0,
        "warning", 86400, figure="dead_letters_15min",
    ),
    Rule(
        "kcity-ingest-worker-disconnected", "worker", alert_sql.WORKER_DISCONNECTED, "gt", 2,
        "critical", 86400, pending="1m", figure="minutes_since_report", per_pilot=False,
    ),
    Rule(
        "kcity-broker-dropped", "broker_dropped", alert_sql.BROKER_DROPPED, "gt", 0,
        "critical", 3600, figure="dropped_15min", per_pilot=False,
    ),
)  # fmt: skip

# What a message's {placeholders} become: Grafana's template of each label and the value.
TEMPLATES = {
    "pilot": "{{ $labels.pilot }}",
    "device": "{{ $labels.device }}",
    "segment": "{{ $labels.segment }}",
    "worker": "{{ $labels.worker }}",
    "codes": "{{ $labels.codes }}",
    "value": '{{ printf "%.1f" $values.B.Value }}',
}


def message(text: str) -> str:
    """A translation-table sentence with its placeholders turned into Grafana templates."""
    return text.format_map(TEMPLATES)


def _query(rule: Rule) -> dict[str, Any]:
    return {
        "refId": "A",
        "relativeTimeRange": {"from": rule.lookback_s, "to": 0},
        "datasourceUid": DATASOURCE_UID,
        "model": {
            "refId": "A",
            "datasource": {"type": DATASOURCE_TYPE, "uid": DATASOURCE_UID},
            "editorMode": "code",
            "format": "table",
            "rawQuery": True,
            "rawSql": dedent_sql(rule.sql),
            "intervalMs": 60000,
            "maxDataPoints": 43200,
        },
    }


def _expression(ref: str, model: dict[str, Any]) -> dict[str, Any]:
    return {
        "refId": ref,
        "relativeTimeRange": {"from": 0, "to": 0},
        "datasourceUid": EXPR,
        "model": {"refId": ref, "datasource": {"type": EXPR, "uid": EXPR}, **model},
    }


def rule_definition(rule: Rule, lang: str, texts: Mapping[str, Labels]) -> dict[str, Any]:
    """One rule in Grafana's file-provisioning form."""
    t = texts[lang]
    annotations = {
        "summary": message(t[f"alert_{rule.key}_summary"]),
        "description": "\n".join(
            message(texts[other][f"alert_{rule.key}_summary"]) for other in texts
        ),
    }
    for other in texts:
        annotations[f"summary_{other}"] = message(texts[other][f"alert_{rule.key}_summary"])
    return {
        "uid": rule.uid,
        "title": t[f"alert_{rule.key}_title"],
        "condition": "C",
        "data": [
            _query(rule),
            _expression(
                "B",
                {"type": "reduce", "expression": "A", "reducer": "last", "settings": {"mode": ""}},
            ),
            _expression(
                "C",
                {
                    "type": "threshold",
                    "expression": "B",
                    "conditions": [
                        {"evaluator": {"type": rule.evaluator, "params": [rule.threshold]}}
                    ],
                },
            ),
        ],
        "noDataState": "OK",
        "execErrState": "Error",
        "for": rule.pending,
        "annotations": annotations,
        "labels": {"kcity": "true", "severity": rule.severity, "rule": rule.key},
        "isPaused": False,
    }


def provisioning(lang: str, texts: Mapping[str, Labels]) -> dict[str, Any]:
    """The whole alerting document: rule group, contact point, notification policy.

    ``texts`` maps every language to its labels; ``lang`` is the one titles are in.
    """
    return {
        "apiVersion": 1,
        "groups": [
            {
                "orgId": 1,
                "name": GROUP,
                "folder": FOLDER,
                "interval": INTERVAL,
                "rules": [rule_definition(r, lang, texts) for r in RULES],
            }
        ],
        "contactPoints": [
            {
                "orgId": 1,
                "name": CONTACT_POINT,
                "receivers": [
                    {
                        "uid": "kcity-email",
                        "type": "email",
                        "settings": {"addresses": f"${EMAILS_ENV}", "singleEmail": False},
                        "disableResolveMessage": False,
                    },
                    {
                        "uid": "kcity-webhook",
                        "type": "webhook",
                        "settings": {"url": f"${WEBHOOK_ENV}", "httpMethod": "POST"},
                        "disableResolveMessage": False,
                    },
                ],
            }
        ],
        "policies": [
            {
                "orgId": 1,
                "receiver": CONTACT_POINT,
                "group_by": ["grafana_folder", "alertname", "pilot"],
                "group_wait": "30s",
                "group_interval": "5m",
                "repeat_interval": "4h",
            }
        ],
    }


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the SQL, the bilingual description) as literal blocks."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def dump(document: Mapping[str, Any]) -> str:
    """The YAML text of the alerting document (stable order, Unicode kept)."""
    head = "# Built by `kcity dashboards build --alerting DIR` (dashboards/alerts.py).\n"
    body = yaml.dump(dict(document), Dumper=_Dumper, sort_keys=False, allow_unicode=True)
    return head + body


def write(out_dir: Path, lang: str, texts: Mapping[str, Labels]) -> Path:
    """Write the alerting document into ``out_dir`` (created); return its path."""
    path = out_dir / FILE
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(dump(provisioning(lang, texts)), encoding="utf-8")
    except OSError as exc:
        raise WriteError(f"cannot write alerting to {out_dir}: {exc.strerror}") from exc
    return path
