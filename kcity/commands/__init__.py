"""The verb groups of the `kcity` command, one module each."""

from __future__ import annotations

import typer

from kcity.commands import analytics as analytics_cmd
from kcity.commands import api as api_cmd
from kcity.commands import bridge as bridge_cmd
from kcity.commands import dashboards as dashboards_cmd
from kcity.commands import db, downlink, onboard, stack
from kcity.commands import demo as demo_cmd
from kcity.commands import devices as devices_cmd
from kcity.commands import evidence as evidence_cmd
from kcity.commands import imports as imports_cmd
from kcity.commands import ingest as ingest_cmd
from kcity.commands import payload as payload_cmd
from kcity.commands import pilots as pilots_cmd
from kcity.commands import portfolio as portfolio_cmd
from kcity.commands import report as report_cmd
from kcity.commands import retention as retention_cmd
from kcity.commands import rollups as rollups_cmd
from kcity.commands import simulate as simulate_cmd
from kcity.commands import tokens as tokens_cmd


def register(app: typer.Typer) -> None:
    stack.register(app)
    analytics_cmd.register(app)
    demo_cmd.register(app)
    report_cmd.register(app)
    evidence_cmd.register(app)
    portfolio_cmd.register(app)
    app.add_typer(db.app, name="db")
    app.add_typer(pilots_cmd.app, name="pilots")
    app.add_typer(simulate_cmd.app, name="simulate")
    devices_cmd.app.command("import")(onboard.import_devices)
    devices_cmd.app.command("command")(downlink.command)
    devices_cmd.app.command("commands")(downlink.commands)
    app.add_typer(devices_cmd.app, name="devices")
    app.add_typer(dashboards_cmd.app, name="dashboards")
    app.add_typer(ingest_cmd.app, name="ingest")
    app.add_typer(api_cmd.app, name="api")
    app.add_typer(bridge_cmd.app, name="bridge")
    app.add_typer(tokens_cmd.app, name="tokens")
    app.add_typer(retention_cmd.app, name="retention")
    app.add_typer(imports_cmd.app, name="import")
    app.add_typer(payload_cmd.app, name="payload")
    app.add_typer(rollups_cmd.app, name="rollups")
