"""The self-contained HTML run report: run card, training curves, evaluations, comparisons, item browser, export.

``write_run_report(run_dir, out=None)`` is what ``medtune report``, ``medtune run`` and the
quickstart call; each evaluation folder's ``report.html`` is the same report of that folder.
"""

from .collect import ReportError, collect
from .render import build_report_html, render_markdown, write_run_report

__all__ = ["ReportError", "build_report_html", "collect", "render_markdown", "write_run_report"]
