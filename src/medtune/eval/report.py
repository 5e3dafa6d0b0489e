"""Reports: Markdown + one self-contained HTML file (plots embedded as base64 PNG), and run comparison.

The HTML needs nothing beside it, so it can be mailed or attached to a model card.
Every report states the protocol next to its numbers and carries medtune.DISCLAIMER.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape

from .. import DISCLAIMER
from ..utils.io import atomic_write_json, atomic_write_text
from .metrics import accuracy_summary, mcnemar, paired_difference
from .store import PredictionStore

_MD = """# Evaluation: {{ s.benchmark }} ({{ s.protocol }})

- Model: `{{ s.model }}`
- Protocol: {{ s.protocol_description }}{% if s.loglik_style %}; style used: **{{ s.loglik_style }}**{% endif %}{% if s.harness_task %} (lm-evaluation-harness task `{{ s.harness_task }}`){% endif %}
- Items: {{ s.accuracy.n }}; chance: {{ s.chance if s.chance is not none else "n/a" }}

| metric | value | 95% CI (Wilson) |
|---|---|---|
| accuracy | {{ "%.4f"|format(s.accuracy.accuracy) }} | {{ s.accuracy.ci95[0] }} - {{ s.accuracy.ci95[1] }} |
{% if s.accuracy_norm %}| accuracy (length-normalised) | {{ "%.4f"|format(s.accuracy_norm.accuracy) }} | {{ s.accuracy_norm.ci95[0] }} - {{ s.accuracy_norm.ci95[1] }} |
{% endif %}| unparseable (counted wrong) | {{ s.accuracy.unparseable }} | |
{% if s.calibration %}| ECE (10 bins) | {{ s.calibration.ece }} | |
{% endif %}{% if s.open_ended %}| open-ended ROUGE-L F1 ({{ s.open_ended.n }} items) | {{ s.open_ended.rougeL_f1 }} | |
{% endif %}{% if s.permutation_consistency %}| option-permutation consistency | {{ s.permutation_consistency.consistency }} | {{ s.permutation_consistency.ci95[0] }} - {{ s.permutation_consistency.ci95[1] }} |
{% endif %}{% if s.counterfactual_consistency %}| demographic counterfactual consistency ({{ s.counterfactual_consistency.groups }} groups) | {{ s.counterfactual_consistency.consistency }} | {{ s.counterfactual_consistency.ci95[0] }} - {{ s.counterfactual_consistency.ci95[1] }} |
{% endif %}
{% if s.by_subject %}
## By subject

| subject | n | accuracy | 95% CI |
|---|---|---|---|
{% for k, v in s.by_subject.items() %}| {{ k }} | {{ v.n }} | {{ "%.4f"|format(v.accuracy) }} | {{ v.ci95[0] }} - {{ v.ci95[1] }} |
{% endfor %}{% endif %}
{% if s.length_vs_correctness %}
## Reasoning length vs correctness

Point-biserial r = {{ s.length_vs_correctness.pointbiserial_r }} (p = {{ s.length_vs_correctness.p_value }}).

| reasoning chars | n | accuracy |
|---|---|---|
{% for b in s.length_vs_correctness.by_length %}| {{ b.min_len }}-{{ b.max_len }} | {{ b.n }} | {{ "%.4f"|format(b.accuracy) }} |
{% endfor %}{% endif %}
{{ disclaimer }}
"""

_HTML = """<!doctype html><html><head><meta charset="utf-8"><title>{{ title }}</title>
<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px}
.cols{display:flex;gap:2em}.cols>div{flex:1}pre{white-space:pre-wrap}</style></head><body>
<div class="cols">{% for body, plots in parts %}<div>{{ body }}{% for p in plots %}<img alt="plot" style="max-width:100%" src="data:image/png;base64,{{ p }}">{% endfor %}</div>{% endfor %}</div>
</body></html>"""


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def plots_for(summary: dict[str, Any]) -> list[str]:
    """Reliability diagram (loglik) and accuracy by reasoning length (cot), as base64 PNGs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    if summary.get("calibration", {}).get("bins"):
        bins = summary["calibration"]["bins"]
        fig, ax = plt.subplots(figsize=(4, 4))
        ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
        ax.bar([(b["lo"] + b["hi"]) / 2 for b in bins], [b["accuracy"] for b in bins], width=0.09, alpha=0.7, label="accuracy")
        ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], "o-", label="per bin")
        ax.set(xlabel="confidence (max option probability)", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1),
               title=f"Reliability, ECE={summary['calibration']['ece']}")
        ax.legend(fontsize=7)
        out.append(_png(fig))
    if summary.get("length_vs_correctness", {}).get("by_length"):
        table = summary["length_vs_correctness"]["by_length"]
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.errorbar([f"{b['min_len']}-{b['max_len']}" for b in table], [b["accuracy"] for b in table],
                    yerr=[[b["accuracy"] - b["ci95"][0] for b in table], [b["ci95"][1] - b["accuracy"] for b in table]],
                    fmt="o-", capsize=3)
        ax.set(xlabel="reasoning length (characters, quartiles)", ylabel="accuracy", ylim=(0, 1), title="Reasoning length vs correctness")
        out.append(_png(fig))
    return out


def _markdown(summary: dict[str, Any]) -> str:
    return jinja2.Template(_MD, trim_blocks=False).render(s=summary, disclaimer=DISCLAIMER)


def _html(title: str, parts: list[tuple[str, list[str]]]) -> str:
    """Markdown bodies rendered as preformatted text beside their plots (no markdown dependency)."""
    env = jinja2.Environment(autoescape=True)
    escaped = [(Markup("<pre>") + escape(body) + Markup("</pre>"), plots) for body, plots in parts]
    return env.from_string(_HTML).render(title=title, parts=escaped)


def write_report(out_dir: str | Path) -> tuple[Path, Path]:
    """report.md and report.html from an evaluation folder's summary.json."""
    out_dir = Path(out_dir)
    summary = json.loads((out_dir / "summary.json").read_text())
    md = _markdown(summary)
    atomic_write_text(out_dir / "report.md", md)
    atomic_write_text(out_dir / "report.html", _html(f"{summary['benchmark']} {summary['protocol']}", [(md, plots_for(summary))]))
    return out_dir / "report.md", out_dir / "report.html"


def compare_runs(dir_a: str | Path, dir_b: str | Path, out_dir: str | Path | None = None) -> dict[str, Any]:
    """Paired comparison of two evaluation folders on their common items (McNemar + gain interval)."""
    rows_a = {r["id"]: r for r in PredictionStore(Path(dir_a) / "predictions.jsonl").load() if "#perm" not in r["id"]}
    rows_b = {r["id"]: r for r in PredictionStore(Path(dir_b) / "predictions.jsonl").load() if "#perm" not in r["id"]}
    common = sorted(set(rows_a) & set(rows_b))
    if not common:
        raise ValueError(f"{dir_a} and {dir_b} share no item ids: a paired comparison needs the same items")
    ca, cb = [bool(rows_a[i]["correct"]) for i in common], [bool(rows_b[i]["correct"]) for i in common]
    result = {
        "a": str(dir_a), "b": str(dir_b), "items": len(common),
        "accuracy_a": accuracy_summary(ca), "accuracy_b": accuracy_summary(cb),
        "difference_b_minus_a": paired_difference(ca, cb), "mcnemar": mcnemar(ca, cb),
    }
    if out_dir is not None:
        out_dir = Path(out_dir)
        atomic_write_json(out_dir / "compare.json", result)
        md = _compare_markdown(result)
        atomic_write_text(out_dir / "compare.md", md)
        parts = [(md, [])]
        for d in (dir_a, dir_b):
            s = json.loads((Path(d) / "summary.json").read_text())
            parts.append((_markdown(s), plots_for(s)))
        atomic_write_text(out_dir / "compare.html", _html("comparison", parts))
    return result


def _compare_markdown(r: dict[str, Any]) -> str:
    d, m = r["difference_b_minus_a"], r["mcnemar"]
    return (
        f"# Paired comparison on {r['items']} common items\n\n"
        f"| run | accuracy | 95% CI (Wilson) |\n|---|---|---|\n"
        f"| A `{r['a']}` | {r['accuracy_a']['accuracy']:.4f} | {r['accuracy_a']['ci95'][0]} - {r['accuracy_a']['ci95'][1]} |\n"
        f"| B `{r['b']}` | {r['accuracy_b']['accuracy']:.4f} | {r['accuracy_b']['ci95'][0]} - {r['accuracy_b']['ci95'][1]} |\n\n"
        f"Gain B - A: {d['gain']:+.4f} (95% CI {d['ci95'][0]} to {d['ci95'][1]}, paired Wald). "
        f"McNemar ({m['test']}): A-only correct {m['b']}, B-only correct {m['c']}, p = {m['p_value']:.4g}.\n\n{DISCLAIMER}\n"
    )
