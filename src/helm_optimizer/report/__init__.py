"""Report: merge evaluation records with HELM's per-instance scores into tables, tests and figures."""

from __future__ import annotations

from helm_optimizer.report.build import ReportPaths, build_report, summarize_for_console

__all__ = ["ReportPaths", "build_report", "summarize_for_console"]
