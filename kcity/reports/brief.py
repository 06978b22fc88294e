"""The portfolio brief (`kcity portfolio`): the home dashboard's table, the pilots on a map
and each pilot's verified figures of a window, as HTML and PDF for a ministry meeting.

Same look and machinery as the evaluation reports (`render`): Jinja2, the report CSS,
WeasyPrint, numbers carrying their JSON key in ``data-key`` so a test can check them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import psycopg

from kcity.portfolio import brief
from kcity.reports import figures
from kcity.reports.i18n import labels
from kcity.reports.render import environment, prepare_output, software_version, write_pages
from kcity.window import Window


@dataclass(frozen=True)
class BriefFiles:
    html: Path
    pdf: Path
    map: Path


def build_brief(conn: psycopg.Connection, window: Window, out_dir: Path, lang: str = "ko", *,
                now: dt.datetime | None = None) -> BriefFiles:  # fmt: skip
    """Write ``portfolio-<from>-<to>-<lang>.html``, ``.pdf`` and its map into `out_dir`."""
    prepare_output(out_dir, lang)
    at = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).replace(microsecond=0)
    t = dict(labels(lang))
    pilots = brief(conn, t, window, at)
    stem = out_dir / f"portfolio-{window.start}-{window.end}-{lang}"
    points = [(float(b.row["latitude"]), float(b.row["longitude"]), str(b.row["city"]),
               bool(b.row["alerts_firing"])) for b in pilots]  # fmt: skip
    map_path = figures.pilot_map(points, t, stem.with_name(f"{stem.name}-map.png"))
    html = (
        environment()
        .get_template("portfolio.html.j2")
        .render(
            lang=lang,
            t=t,
            pilots=pilots,
            problems=[f"{b.row['pilot']} — {p}" for b in pilots for p in b.problems],
            window_from=window.start.isoformat(),
            window_to=window.end.isoformat(),
            generated=at.isoformat().replace("+00:00", " UTC"),
            software=software_version(),
            fig_map=map_path.name,
            css=resources.files("kcity.reports.templates").joinpath("report.css").read_text(),
        )
    )
    html_path, pdf_path = write_pages(html, stem)
    return BriefFiles(html_path, pdf_path, map_path)


__all__ = ["BriefFiles", "build_brief"]
