"""Report figures (matplotlib, Agg backend), rendered to PNG and SVG bytes.

Figures are built with :class:`matplotlib.figure.Figure`, not pyplot, so no global figure state is
kept; style settings apply only inside :func:`matplotlib.rc_context`. SVG output has a fixed hash
salt and no date, so the same table always gives the same bytes.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import matplotlib

matplotlib.use("Agg")

from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from helm_optimizer.report.table import BASELINE, ReportRow, ReportTable, method_sort_key

__all__ = ["FigureBytes", "figure_bytes", "rankings_figure", "render_figures", "scores_figure"]

logger = logging.getLogger(__name__)

_PNG_DPI = 150
_SVG_METADATA: dict[str, str | None] = {"Date": None, "Creator": "helm-optimizer report"}
_PNG_METADATA: dict[str, str | None] = {"Software": "helm-optimizer report"}
_BASELINE_COLOR = "#bdbdbd"
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")
_FLIP_COLOR = "#d62728"


@dataclass(frozen=True)
class FigureBytes:
    scores_png: bytes
    scores_svg: bytes
    rankings_png: bytes
    rankings_svg: bytes


@contextmanager
def _style() -> Iterator[None]:
    with matplotlib.rc_context(
        {
            "svg.hashsalt": "helm-optimizer-report",
            "svg.fonttype": "path",
            "font.family": "DejaVu Sans",
            "font.size": 9,
            "axes.spines.top": False,
            "axes.spines.right": False,
        }
    ):
        yield


_MIN_WIDTH = 7.5  # inches: room for the title and a legend of long optimizer names with one panel


def _grid(count: int, panel_w: float, panel_h: float) -> tuple[Figure, list[Any]]:
    ncols = min(3, count)
    nrows = math.ceil(count / ncols)
    fig = Figure(figsize=(max(_MIN_WIDTH, panel_w * ncols), panel_h * nrows + 1.2), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel().tolist()
    for ax in axes[count:]:
        ax.set_visible(False)
    return fig, axes[:count]


def _methods(rows: Sequence[ReportRow]) -> list[str]:
    return sorted({r.method for r in rows}, key=method_sort_key)


def _method_colors(methods: Sequence[str]) -> dict[str, str]:
    others = [m for m in methods if m != BASELINE]
    colors = {m: _PALETTE[i % len(_PALETTE)] for i, m in enumerate(others)}
    colors[BASELINE] = _BASELINE_COLOR
    return colors


def scores_figure(table: ReportTable) -> Figure:
    """One panel per scenario: models on x, one bar per method with its 95% bootstrap CI.

    The baseline is a hatched grey bar; methods are coloured bars.
    """
    methods = _methods(table.rows)
    colors = _method_colors(methods)
    scenarios = table.scenarios
    max_models = max(len({r.model for r in table.rows if r.scenario == s}) for s in scenarios)
    fig, axes = _grid(len(scenarios), max(3.6, 0.9 + max_models * len(methods) * 0.35), 3.4)
    width = 0.8 / len(methods)
    for ax, scenario in zip(axes, scenarios, strict=True):
        rows = [r for r in table.rows if r.scenario == scenario]
        models = sorted({r.model for r in rows})
        for j, method in enumerate(methods):
            xs, heights, errs_low, errs_high = [], [], [], []
            for i, model in enumerate(models):
                row = next((r for r in rows if r.model == model and r.method == method), None)
                if row is None:
                    continue
                xs.append(i - 0.4 + width * (j + 0.5))
                heights.append(row.mean)
                errs_low.append(max(0.0, row.mean - row.ci_low))
                errs_high.append(max(0.0, row.ci_high - row.mean))
            if not xs:
                continue
            is_base = method == BASELINE
            ax.bar(
                xs,
                heights,
                width=width * 0.92,
                color=colors[method],
                edgecolor="black" if is_base else colors[method],
                hatch="//" if is_base else None,
                linewidth=0.8,
                yerr=[errs_low, errs_high],
                error_kw={"elinewidth": 0.9, "capsize": 2.5, "ecolor": "black"},
                label=method,
            )
        metric = rows[0].main_metric
        ax.set_title(scenario)
        ax.set_ylabel(f"{metric} (mean, 95% CI)")
        ax.set_xticks(range(len(models)))
        ax.set_xticklabels(models, rotation=20, ha="right")
        ax.set_xlim(-0.6, len(models) - 0.4)
        ax.grid(axis="y", linewidth=0.4, alpha=0.5)
        ax.set_axisbelow(True)
    handles = [
        Patch(
            facecolor=colors[m],
            edgecolor="black" if m == BASELINE else colors[m],
            hatch="//" if m == BASELINE else None,
            label=m,
        )
        for m in methods
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(methods), 3), frameon=False)
    fig.suptitle("Main metric per scenario and model, by prompting method")
    return fig


def rankings_figure(table: ReportTable) -> Figure:
    """One panel per scenario: rank of each model (1 = best) under each method, as a bump chart.

    A red ring marks a model whose order against some other model is reversed relative to the
    baseline (a ranking flip).
    """
    scenarios = table.scenarios
    all_models = sorted({r.model for r in table.rows})
    model_colors = {m: _PALETTE[i % len(_PALETTE)] for i, m in enumerate(all_models)}
    max_methods = max(len({r.method for r in table.rows if r.scenario == s}) for s in scenarios)
    fig, axes = _grid(len(scenarios), max(3.6, 1.2 + 0.9 * max_methods), 3.2)
    for ax, scenario in zip(axes, scenarios, strict=True):
        rankings = [r for r in table.rankings if r.scenario == scenario]
        methods = [r.method for r in rankings]
        flipped = {
            (f.method, model)
            for f in table.flips
            if f.scenario == scenario
            for model in (f.model_a, f.model_b)
        }
        models = sorted({m for r in rankings for m in r.models})
        for model in models:
            xs = [i for i, r in enumerate(rankings) if model in r.models]
            ys = [r.models.index(model) + 1 for r in rankings if model in r.models]
            ax.plot(xs, ys, color=model_colors[model], marker="o", markersize=5, linewidth=1.6)
            for x, y in zip(xs, ys, strict=True):
                if (methods[x], model) in flipped:
                    ax.plot(
                        [x],
                        [y],
                        marker="o",
                        markersize=11,
                        markerfacecolor="none",
                        markeredgecolor=_FLIP_COLOR,
                        markeredgewidth=1.6,
                    )
        ax.set_title(scenario)
        ax.set_xticks(range(len(methods)))
        ax.set_xticklabels(methods, rotation=20, ha="right")
        for label, method in zip(ax.get_xticklabels(), methods, strict=True):
            if method == BASELINE:
                label.set_fontweight("bold")
        ax.set_yticks(range(1, len(models) + 1))
        ax.set_ylim(len(models) + 0.5, 0.5)
        ax.set_ylabel("rank (1 = best)")
        ax.set_xlim(-0.4, len(methods) - 0.6)
        ax.grid(axis="y", linewidth=0.4, alpha=0.5)
    handles: list[Any] = [
        Line2D([], [], color=model_colors[m], marker="o", linewidth=1.6, label=m) for m in all_models
    ]
    handles.append(
        Line2D(
            [],
            [],
            linestyle="none",
            marker="o",
            markersize=10,
            markerfacecolor="none",
            markeredgecolor=_FLIP_COLOR,
            markeredgewidth=1.6,
            label="order flipped vs baseline",
        )
    )
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 3), frameon=False)
    fig.suptitle("Model rankings per method (flips vs baseline ringed)")
    return fig


def figure_bytes(fig: Figure, fmt: Literal["png", "svg"]) -> bytes:
    """Render ``fig`` deterministically (fixed SVG hash salt, no dates)."""
    buffer = io.BytesIO()
    with _style():
        if fmt == "svg":
            fig.savefig(buffer, format="svg", metadata=_SVG_METADATA)
        else:
            fig.savefig(buffer, format="png", dpi=_PNG_DPI, metadata=_PNG_METADATA)
    return buffer.getvalue()


def render_figures(table: ReportTable) -> FigureBytes:
    """Both report figures as PNG and SVG bytes."""
    with _style():
        scores = scores_figure(table)
        rankings = rankings_figure(table)
    result = FigureBytes(
        scores_png=figure_bytes(scores, "png"),
        scores_svg=figure_bytes(scores, "svg"),
        rankings_png=figure_bytes(rankings, "png"),
        rankings_svg=figure_bytes(rankings, "svg"),
    )
    logger.debug("Rendered report figures for %d scenarios", len(table.scenarios))
    return result
