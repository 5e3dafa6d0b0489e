"""Render a run folder into one self-contained HTML file (and the Markdown twins of eval reports).

Everything visual is in ``templates/`` (Jinja2, autoescaped: model output is untrusted text)
and ``static/`` (CSS and the item browser's JS, inlined into the page). Python only gathers
the numbers (collect.py), the item data (items.py) and the plots (plots.py).
"""

from __future__ import annotations

import datetime as _dt
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from .. import DISCLAIMER, __version__
from ..eval.metrics import accuracy_by_group
from ..utils.io import atomic_write_text
from . import plots
from .collect import Evaluation, RunContents, collect
from .items import browser_data


def _num(value: Any, digits: int | None = None, none: str = "n/a") -> str:
    """A number as summary.json holds it (already rounded there), or with ``digits`` significant digits; None is ``none``."""
    if value is None:
        return none
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if digits is not None:
        return f"{value:.{digits}g}"
    return str(value)


def _fixed(value: Any, digits: int = 4, sign: bool = False, none: str = "n/a") -> str:
    """A proportion or difference with ``digits`` decimals (``sign``: always signed); None (no items) is ``none``."""
    if value is None:
        return none
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def _ci(pair: Any, sep: str = " – ") -> str:
    """An interval [low, high] as summary.json holds it; None (no items to estimate from) is "n/a"."""
    return "n/a" if pair is None else f"{pair[0]}{sep}{pair[1]}"


def _gain_method(difference: dict[str, Any]) -> str:
    """The interval method of a paired gain; compare.json files written before 2026-12-05 record none (paired Wald)."""
    return difference.get("method") or "paired Wald, as medtune computed it before 2026-12-05"


def _subset(summary: dict[str, Any]) -> str:
    """Which items an evaluation cut by --limit covers ("first 300 items of 1273"); "" without a limit."""
    limit = (summary.get("settings") or {}).get("limit")
    if limit is None:
        return ""
    total = summary.get("benchmark_items")
    if total is None:
        return f"at most the first {limit} items, --limit {limit}; the benchmark declares no size"
    return f"first {limit} items of {total}, --limit {limit}" if limit < total else f"all {total} items, --limit {limit}"


def _thousands(n: Any) -> str:
    return f"{n:,}" if isinstance(n, int) and not isinstance(n, bool) else _num(n)


def _mib(n_bytes: Any) -> str:
    return "n/a" if n_bytes is None else f"{n_bytes / 2**20:.1f} MiB"


def _static(name: str) -> str:
    return resources.files("medtune.report").joinpath("static", name).read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """HTML templates autoescape; Markdown templates (.md.j2) do not (they are not HTML)."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("medtune.report", "templates"),
        autoescape=lambda name: bool(name) and name.endswith(".html.j2"),
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
    )
    env.filters.update(num=_num, mib=_mib, thousands=_thousands, fixed=_fixed, ci=_ci, gain_method=_gain_method,
                       subset=_subset)
    # Compact JSON for the item data; tojson still escapes < > & ' so model text cannot close the <script>.
    env.policies["json.dumps_kwargs"] = {"ensure_ascii": False, "separators": (",", ":"), "sort_keys": False}
    return env


def render_markdown(template: str, **context: Any) -> str:
    return environment().get_template(template).render(disclaimer=DISCLAIMER, **context)


def _reasoning_formats(contents: RunContents) -> dict[str, str | None]:
    """Each evaluation's reasoning format: from its summary, else from the training run it evaluated."""
    by_run = {str(t.folder.resolve()): t.manifest.get("reasoning_format") for t in contents.trainings}
    out = {}
    for ev in contents.evaluations:
        model = Path(str(ev.summary.get("model", "")))
        prompt = ev.summary.get("prompt") if isinstance(ev.summary.get("prompt"), dict) else {}
        out[ev.key] = prompt.get("reasoning_format") or by_run.get(str(model.resolve()) if model.is_dir() else "")
    return out


def _evaluation_view(ev: Evaluation, index: int) -> dict[str, Any]:
    s = ev.summary
    specialty = {} if s.get("by_specialty") else accuracy_by_group(ev.rows, "specialty")
    return {"ev": ev, "s": s, "anchor": f"eval-{index}", "by_specialty": specialty,
            "reliability": plots.reliability_diagram(s.get("calibration")),
            "length": plots.length_vs_correctness(s.get("length_vs_correctness"))}


def build_context(contents: RunContents) -> dict[str, Any]:
    """Everything the templates show, from the collected folder contents."""
    data = browser_data(contents.evaluations, contents.comparisons, _reasoning_formats(contents))
    flips_by_label = {c["label"]: c for c in data["comparisons"]}
    eval_index = {ev.key: i for i, ev in enumerate(contents.evaluations)}
    overview = [{"label": f"{ev.label} ({ev.summary['benchmark']}, {ev.summary['protocol']})",
                 "accuracy": ev.summary["accuracy"]["accuracy"], "ci95": ev.summary["accuracy"]["ci95"],
                 "chance": ev.summary.get("chance")} for ev in contents.evaluations]
    return {
        "title": contents.root.resolve().name,
        "generated": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "version": __version__,
        "disclaimer": DISCLAIMER,
        "trainings": [{"run": t, "curves": plots.training_curves(t.metrics),
                       "eval_points": [r for r in t.metrics if r.get("eval_loss") is not None]} for t in contents.trainings],
        "evaluations": [_evaluation_view(ev, i) for i, ev in enumerate(contents.evaluations)],
        "overview_plot": plots.accuracy_intervals(overview),
        "comparisons": [{"c": c, "r": c.result, "flips": flips_by_label.get(c.label),
                         "a_anchor": f"eval-{eval_index[c.a.key]}" if c.a else None,
                         "b_anchor": f"eval-{eval_index[c.b.key]}" if c.b else None} for c in contents.comparisons],
        "exports": contents.exports,
        "contamination": contents.contamination,
        "items": data,
        "item_count": len(data["items"]),
        "css": Markup(_static("report.css")),
        "js": Markup(_static("items.js")),
    }


def build_report_html(root: str | Path) -> str:
    """The report of ``root`` (a run, evaluation or comparison folder) as one HTML string."""
    return environment().get_template("report.html.j2").render(**build_context(collect(root)))


def write_run_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the self-contained HTML report of ``run_dir`` (default: RUN_DIR/report.html); returns its path.

    Raises ``ReportError`` (file and field named) when the folder holds nothing a report can read.
    """
    run_dir = Path(run_dir)
    return atomic_write_text(Path(out) if out else run_dir / "report.html", build_report_html(run_dir))
