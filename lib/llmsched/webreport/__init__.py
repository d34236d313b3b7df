"""The web report of a profile: results/report/<profile>/index.html, written at the end of ./run_all.sh.

    python -m llmsched.webreport smoke             # (re)write the report from what results/ holds
    python -m llmsched.webreport smoke --browser   # and open it in headless Chromium (llmsched.webreport.browser)

One page a browser opens: the claims table, every figure, every table, the stages' runtimes, the profile's
parameters, and each executed notebook rendered as HTML (nbconvert). Everything it shows is copied into the
report's folder and linked relatively, so the folder can be zipped and sent:

    results/report/<profile>/
        index.html          the page (Jinja template llmsched/webreport/templates/index.html.j2)
        figures/*.png       from results/figures/<profile>/
        tables/*.csv        from results/tables/<profile>/ (each also shown on the page)
        notebooks/*.html    results/executed/<profile>/*.ipynb rendered by nbconvert (lab template)
        parameters.yaml     the profile's parameter file as the run read it
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from llmsched.paths import REPO_ROOT, results_dir

logger = logging.getLogger(__name__)

TEMPLATES = Path(__file__).with_name("templates")
# figures first shown in the page, by name prefix: the order a reader of the two papers would look for them
SECTIONS = (("PARS: ranking", ("pars_lengths", "pars_ranker", "pars_ablations", "pars_backbones", "pars_transfer")),
            ("PARS: scheduling", ("pars_sim", "pars_proxy", "pars_headroom", "pars_serve", "sim_vs_engine",
                                  "pars_reasoning")),
            ("Preemption", ("preemption",)),
            ("EWSJF", ("ewsjf",)),
            ("Head to head and overheads", ("headtohead", "overheads")))


@dataclass
class ReportPage:
    """What index.html shows, every path relative to the report's folder."""

    profile: str
    generated: str
    commit: str
    claims: str | None = None  # the claims table as HTML
    figures: list[tuple[str, list[dict[str, str]]]] = field(default_factory=list)  # section → [{name, src}]
    tables: list[dict[str, str]] = field(default_factory=list)  # {name, href, html}
    stages: list[dict[str, Any]] = field(default_factory=list)  # {notebook, status, seconds, href}
    parameters: list[dict[str, str]] = field(default_factory=list)  # {name, value}
    parameters_href: str | None = None
    missing: list[str] = field(default_factory=list)  # what the run has not produced (yet)


def _commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def _table_html(frame: pd.DataFrame, max_rows: int = 200) -> str:
    shown = frame.head(max_rows)
    html = shown.to_html(index=False, classes="data", border=0, na_rep="", float_format=lambda x: f"{x:.4g}")
    if len(frame) > max_rows:
        html += f"<p class='note'>first {max_rows} of {len(frame)} rows; the CSV has all</p>"
    return html


def _section_of(name: str) -> str:
    for title, prefixes in SECTIONS:
        if name.startswith(prefixes):
            return title
    return "Other figures"


def _render_notebook(src: Path, dest: Path) -> None:
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter(template_name="lab").from_filename(str(src))
    dest.write_text(body, encoding="utf-8")


def write_report(profile: str, root: str | Path | None = None, profiles_dir: Path | None = None) -> Path:
    """Write results/report/<profile>/ from what `root` (default results/) holds for the profile; its index.html.

    Parts the run has not produced are listed on the page as missing rather than failing: the report of a run
    that stopped early still shows what exists."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    root = Path(root) if root is not None else results_dir()
    out = root / "report" / profile
    if out.exists():
        shutil.rmtree(out)
    for sub in ("figures", "tables", "notebooks"):
        (out / sub).mkdir(parents=True)
    page = ReportPage(profile=profile, generated=dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
                      commit=_commit())

    tab_dir, fig_dir, exe_dir = (root / "tables" / profile, root / "figures" / profile, root / "executed" / profile)
    claims = tab_dir / "claims.csv"
    if claims.exists():
        page.claims = _table_html(pd.read_csv(claims), max_rows=1000)
    else:
        page.missing.append(f"the claims table ({claims.relative_to(root)}: notebook 06)")

    by_section: dict[str, list[dict[str, str]]] = {}
    for png in sorted(fig_dir.glob("*.png")):
        shutil.copy2(png, out / "figures" / png.name)
        by_section.setdefault(_section_of(png.stem), []).append({"name": png.stem, "src": f"figures/{png.name}"})
    order = [t for t, _ in SECTIONS] + ["Other figures"]
    page.figures = [(t, by_section[t]) for t in order if t in by_section]
    if not by_section:
        page.missing.append(f"figures ({fig_dir.relative_to(root)}: notebook 06)")

    for csv in sorted(tab_dir.glob("*.csv")):
        if csv.stem == "claims":
            continue
        shutil.copy2(csv, out / "tables" / csv.name)
        page.tables.append({"name": csv.stem, "href": f"tables/{csv.name}", "html": _table_html(pd.read_csv(csv))})
    if not page.tables:
        page.missing.append(f"tables ({tab_dir.relative_to(root)}: notebook 06)")

    for nb in sorted(exe_dir.glob("[0-9][0-9]_*.ipynb")):
        marker = exe_dir / f"{nb.stem}.done.json"
        done = json.loads(marker.read_text()) if marker.exists() else {}
        href = f"notebooks/{nb.stem}.html"
        try:
            _render_notebook(nb, out / href)
        except Exception as exc:  # a notebook nbconvert cannot read is named on the page, not fatal to the rest
            logger.warning("could not render %s: %s", nb, exc)
            href = ""
        page.stages.append({"notebook": nb.name, "status": "done" if marker.exists() else "not finished",
                            "seconds": done.get("seconds"), "href": href})
    if not page.stages:
        page.missing.append(f"executed notebooks ({exe_dir.relative_to(root)}: ./run_all.sh {profile})")

    profile_file = (profiles_dir or REPO_ROOT / "artifact" / "profiles") / f"{profile}.yaml"
    if profile_file.exists():
        import yaml

        shutil.copy2(profile_file, out / "parameters.yaml")
        page.parameters_href = "parameters.yaml"
        values = yaml.safe_load(profile_file.read_text()) or {}
        page.parameters = [{"name": k, "value": json.dumps(v, default=str)} for k, v in values.items()]

    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html", "j2"]))
    html = env.get_template("index.html.j2").render(page=page, total_seconds=sum(
        s["seconds"] or 0 for s in page.stages))
    index = out / "index.html"
    index.write_text(html, encoding="utf-8")
    logger.info("web report: %s (%d figures, %d tables, %d notebooks)", index,
                sum(len(f) for _, f in page.figures), len(page.tables), len(page.stages))
    return index


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m llmsched.webreport", description=__doc__.split("\n")[0])
    ap.add_argument("profile")
    ap.add_argument("--browser", action="store_true", help="then open it in headless Chromium and check it")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    index = write_report(args.profile)
    print(f"report: {index}")
    if args.browser:
        from llmsched.webreport.browser import check_report

        result = check_report(index)
        print(json.dumps(result.summary(), indent=2))
        return 0 if result.ok else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
