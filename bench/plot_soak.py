#!/usr/bin/env python3
"""Draw `bench/results/soak.json` as a PNG: Quill's RSS against minutes into the soak.

Run by the harness (`bench/run --soak`) with whichever Python has matplotlib:
    plot_soak.py SOAK_JSON OUTPUT_PNG
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot(report: dict, output: Path) -> None:
    """RSS in MB against minutes, a line at the end of the first minute, the verdict in the title."""
    samples = report["samples"]
    minutes = [s["seconds"] / 60 for s in samples]
    rss = [s["rss_mb"] for s in samples]
    verdict = report["verdict"]
    figure, axes = plt.subplots(figsize=(8, 4.5), dpi=100)
    axes.plot(minutes, rss, marker="o", markersize=3, linewidth=1.2, label="VmRSS")
    axes.axvline(1.0, color="grey", linestyle="--", linewidth=1, label="end of the first minute")
    if "max_over_min" in verdict:
        # Pass: every sample from 1 min on inside this band (max / min at most the limit).
        low = verdict["min_mb"]
        axes.axhspan(low, low * verdict["limit"], color="tab:green", alpha=0.12,
                     label=f"min from 1 min on, +{verdict['limit'] - 1:.0%}")
        title = (f"Quill RSS, {', '.join(report['queries'])} at once: max/min after 1 min "
                 f"{verdict['max_over_min']:.3f} ({'pass' if verdict['pass'] else 'FAIL'})")
    else:
        title = f"Quill RSS: {verdict.get('reason', 'no verdict')}"
    axes.set_title(title, fontsize=10)
    axes.set_xlabel("minutes")
    axes.set_ylabel("RSS (MB)")
    axes.set_xlim(left=0)
    axes.set_ylim(bottom=0, top=max(rss + [verdict.get("min_mb", 0) * verdict.get("limit", 1)]) * 1.15)
    axes.grid(True, alpha=0.3)
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(output)


def main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit("usage: plot_soak.py SOAK_JSON OUTPUT_PNG")
    plot(json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2]))


if __name__ == "__main__":
    main()
