"""Reports: tables (Markdown, CSV) and accuracy-versus-cost plots over run directories."""

from audioprune.report.build import Report, write_report

__all__ = ["Report", "write_report"]
