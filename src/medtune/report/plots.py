"""Every plot medtune reports draw, in one style, returned as self-contained data URIs.

Plots are SVG (sharp at any zoom, small for line plots) base64-encoded into
``data:image/svg+xml;base64,...``: the report embeds them in ``<img>`` tags, so it needs no
file beside it and the SVG's own XML (namespaces, metadata) never appears as markup in the
page. Each function takes plain numbers (summary.json / metrics.jsonl content) and returns
None when there is nothing to draw.

>>> uri = accuracy_intervals([{"label": "eval/base", "accuracy": 0.3, "ci95": [0.2, 0.4], "chance": 0.25}])
>>> uri.startswith("data:image/svg+xml;base64,")
True
"""

from __future__ import annotations

import base64
import functools
import io
from collections.abc import Callable, Sequence
from typing import Any

# One palette for every report: colour-blind safe (Okabe-Ito), muted grid, small type.
COLORS = {"main": "#0072B2", "second": "#D55E00", "third": "#009E73", "chance": "#999999", "bar": "#56B4E9"}
STYLE = {
    "font.family": "sans-serif", "font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9,
    "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.3,
    "legend.fontsize": 8, "legend.frameon": False, "svg.fonttype": "none", "svg.hashsalt": "medtune",
}


def styled(fn: Callable[..., str | None]) -> Callable[..., str | None]:
    """Draw inside medtune's style (rc params are read while artists are created, so the whole body runs in it)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> str | None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        with plt.rc_context(STYLE):
            return fn(*args, **kwargs)

    return wrapper


def _figure(ncols: int = 1, size: tuple[float, float] = (4.2, 3.2)) -> tuple[Any, Any]:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=size, squeeze=False)
    return fig, list(axes[0])


def to_data_uri(fig: Any) -> str:
    """The figure as a base64 SVG data URI (no date metadata, so the same numbers give the same bytes)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


@styled
def training_curves(rows: Sequence[dict[str, Any]]) -> str | None:
    """Train loss and eval loss (a marker at every eval step), learning rate, tokens/s against step."""
    series = {key: [(r["step"], r[key]) for r in rows if r.get(key) is not None]
              for key in ("train_loss", "eval_loss", "lr", "tokens_per_s")}
    panels = [p for p in (("loss", ("train_loss", "eval_loss")), ("learning rate", ("lr",)), ("tokens/s", ("tokens_per_s",)))
              if any(series[k] for k in p[1])]
    if not panels:
        return None
    fig, axes = _figure(len(panels), (3.6 * len(panels), 3.0))
    styles = {"train_loss": ("train loss", COLORS["main"], None), "eval_loss": ("eval loss", COLORS["second"], "o"),
              "lr": ("learning rate", COLORS["third"], None), "tokens_per_s": ("tokens/s (cumulative)", COLORS["main"], None)}
    for ax, (title, keys) in zip(axes, panels):
        for key in keys:
            if series[key]:
                label, color, marker = styles[key]
                ax.plot(*zip(*series[key]), color=color, marker=marker, markersize=4, linewidth=1.4, label=label)
        ax.set(xlabel="optimizer step", title=title)
        if title == "loss":
            ax.set_ylabel("cross-entropy (assistant tokens)")
            ax.legend()
        if title == "learning rate":
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    return to_data_uri(fig)


@styled
def reliability_diagram(calibration: dict[str, Any] | None) -> str | None:
    """Accuracy against confidence per bin (the ECE bins of summary.json), with the diagonal."""
    bins = (calibration or {}).get("bins") or []
    if not bins:
        return None
    fig, (ax,) = _figure(1, (3.6, 3.4))
    ax.plot([0, 1], [0, 1], "--", color=COLORS["chance"], linewidth=1, label="perfect calibration")
    ax.bar([(b["lo"] + b["hi"]) / 2 for b in bins], [b["accuracy"] for b in bins], width=0.09,
           color=COLORS["bar"], alpha=0.8, label="accuracy per bin")
    ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], "o-", color=COLORS["main"],
            markersize=4, linewidth=1.2, label="(mean confidence, accuracy)")
    ax.set(xlabel="confidence (max option probability)", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1),
           title=f"Reliability (ECE {calibration['ece']})")
    ax.legend(loc="upper left")
    return to_data_uri(fig)


@styled
def length_vs_correctness(analysis: dict[str, Any] | None) -> str | None:
    """Accuracy with its Wilson interval per reasoning-length quartile."""
    table = (analysis or {}).get("by_length") or []
    if not table:
        return None
    fig, (ax,) = _figure(1, (4.2, 3.2))
    ax.errorbar([f"{b['min_len']}-{b['max_len']}" for b in table], [b["accuracy"] for b in table],
                yerr=[[b["accuracy"] - b["ci95"][0] for b in table], [b["ci95"][1] - b["accuracy"] for b in table]],
                fmt="o-", color=COLORS["main"], capsize=3, markersize=4, linewidth=1.2)
    ax.set(xlabel="reasoning length (characters, quartiles)", ylabel="accuracy", ylim=(0, 1),
           title="Reasoning length vs correctness")
    ax.tick_params(axis="x", labelsize=7)
    return to_data_uri(fig)


@styled
def accuracy_intervals(entries: Sequence[dict[str, Any]]) -> str | None:
    """One row per evaluation: accuracy with its Wilson 95% interval, and chance as a grey tick.

    ``entries``: dicts with label, accuracy, ci95 and chance (None when unknown). An evaluation
    without scorable items (accuracy None) gets the words "no scorable items" on its row, not a point.
    """
    if not entries:
        return None
    fig, (ax,) = _figure(1, (7.0, 0.5 + 0.42 * len(entries)))
    ys = list(range(len(entries)))[::-1]
    for y, e in zip(ys, entries):
        if e["accuracy"] is None:
            ax.text(0.01, y, "no scorable items", va="center", color=COLORS["chance"])
            continue
        lo, hi = e["ci95"]
        ax.errorbar([e["accuracy"]], [y], xerr=[[e["accuracy"] - lo], [hi - e["accuracy"]]], fmt="o",
                    color=COLORS["main"], capsize=3, markersize=5)
        if e.get("chance") is not None:
            ax.plot([e["chance"]], [y], marker="|", markersize=14, color=COLORS["chance"], linestyle="none")
    ax.set_yticks(ys, [e["label"] for e in entries])
    ax.set(xlim=(0, 1), xlabel="accuracy (Wilson 95% interval; grey tick = chance)", ylim=(-0.7, len(entries) - 0.3))
    ax.grid(axis="y", alpha=0)
    return to_data_uri(fig)
