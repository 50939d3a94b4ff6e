"""Render a report: Markdown (figures as files beside it) and one self-contained HTML page."""

from __future__ import annotations

import base64
import hashlib
import html
import math
import shutil
from pathlib import Path
from typing import Any

import yaml

from ratt.report.collect import ACCURACY_COLUMNS, RunRecord

LABELS = {
    "clean": "clean",
    "fgsm": "FGSM",
    "pgd20": "PGD-20",
    "pgd100": "PGD-100",
    "cw20": "CW-20",
    "aa": "AutoAttack",
    "robust": "worst case",
}


def _fmt(value: tuple[float, float], scale: float = 100.0, digits: int = 1) -> str:
    mean, std = value
    if not math.isfinite(mean):
        return "–"
    text = f"{mean * scale:.{digits}f}"
    return text if not math.isfinite(std) else f"{text} ± {std * scale:.{digits}f}"


def results_table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the results table (accuracies in %, mean ± std over runs)."""
    columns = [c for c in ACCURACY_COLUMNS if any(c in row for row in rows)]
    header = ["group", "runs", *[f"{LABELS[c]} (%)" for c in columns], "train (s)"]
    body = [
        [str(row["group"]), str(row["runs"]), *[_fmt(row[c]) if c in row else "–" for c in columns],
         _fmt(row["train_seconds"], 1.0, 0)]
        for row in rows
    ]  # fmt: skip
    return header, body


def flatness_table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the flatness table: one row per measure of
    ``landscape.json["summary"]``, one column per group that has them (mean ± std)."""
    groups = [row for row in rows if row["flatness"]]
    keys = sorted({k for row in groups for k in row["flatness"]})
    header = ["measure", *[str(row["group"]) for row in groups]]
    body = [
        [key, *[_fmt(row["flatness"].get(key, (math.nan, math.nan)), 1.0, 4) for row in groups]]
        for key in keys
    ]
    return header, body


def plot_curves(groups: dict[str, list[RunRecord]], path: Path) -> Path | None:
    """Validation clean/robust accuracy and training loss per epoch, mean ± std over runs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    panels = [("val_clean_acc", "validation clean accuracy (%)", 100), ("val_robust_acc",
              "validation PGD accuracy (%)", 100), ("train_loss", "training loss", 1)]  # fmt: skip
    if not any(r.metrics for records in groups.values() for r in records):
        return None
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for name, records in groups.items():
        for ax, (key, label, scale) in zip(axes, panels, strict=True):
            curves = [[row.get(key, np.nan) for row in r.metrics] for r in records if r.metrics]
            length = min(len(c) for c in curves)
            data = np.array([c[:length] for c in curves], dtype=float) * scale
            epochs = np.arange(1, length + 1)
            mean = np.nanmean(data, axis=0)
            (line,) = ax.plot(epochs, mean, label=f"{name} (n={len(curves)})")
            if len(curves) > 1:
                std = np.nanstd(data, axis=0)
                ax.fill_between(epochs, mean - std, mean + std, color=line.get_color(), alpha=0.2)
            ax.set_xlabel("epoch")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("Training curves (mean ± std over runs)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _markdown_table(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return "\n".join(lines)


def _html_table(header: list[str], body: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>" for cells in body)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _embed(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(path.name)}">'


CSS = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:14px}th,td{border:1px solid #ccc;padding:4px 8px;
text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
img{max-width:100%;border:1px solid #ddd;margin:0.5em 0}pre{background:#f7f7f7;padding:8px;overflow:auto}
.note{color:#555;font-size:13px}"""


def write_report(
    groups: dict[str, list[RunRecord]], rows: list[dict[str, Any]], out: Path, title: str = "ratt report"
) -> tuple[Path, Path]:
    """Write ``report.md`` (+ PNG files) and a self-contained ``report.html`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    figures: list[tuple[str, Path]] = []
    curves = plot_curves(groups, out / "curves.png")
    if curves:
        figures.append(("Training curves", curves))
    seen: set[str] = set()  # `ratt landscape` writes shared plots into every run it compares
    for name, records in groups.items():
        for figure in records[0].figures:
            digest = hashlib.sha256(figure.read_bytes()).hexdigest()
            if digest in seen:
                continue
            seen.add(digest)
            target = out / f"{name.replace('+', '_')}-{figure.name}"
            shutil.copyfile(figure, target)
            figures.append((f"{name}: {figure.stem} ({records[0].path.name})", target))
    results = results_table(rows)
    flat = flatness_table(rows)
    has_flatness = any(row["flatness"] for row in rows)
    runs_list = [str(r.path) for records in groups.values() for r in records]
    note = (
        "Accuracies on the test split in %, mean ± sample std over runs; 'worst case' counts a point "
        "only if every attack run on it failed. From summary.json, replaced by eval.json where "
        "`ratt eval` was run."
    )

    md = [f"# {title}", "", note, "", _markdown_table(*results), ""]
    if has_flatness:
        md += ["## Flatness (landscape.json)", "", _markdown_table(*flat), ""]
    md += ["## Figures", ""] + [f"![{caption}]({path.name})\n\n{caption}\n" for caption, path in figures]
    md += ["## Runs", ""] + [f"- `{r}`" for r in runs_list]
    md_path = out / "report.md"
    md_path.write_text("\n".join(md) + "\n")

    first = next(iter(groups.values()))[0]
    parts = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p class=note>{html.escape(note)}</p>",
        _html_table(*results),
    ]
    if has_flatness:
        parts += ["<h2>Flatness</h2>", _html_table(*flat)]
    parts += ["<h2>Figures</h2>"]
    for caption, path in figures:
        parts.append(f"<figure>{_embed(path)}<figcaption>{html.escape(caption)}</figcaption></figure>")
    parts += ["<h2>Configs</h2>"]
    for name, records in groups.items():
        text = yaml.safe_dump(records[0].config, sort_keys=False)
        parts.append(
            f"<details><summary>{html.escape(name)}</summary><pre>{html.escape(text)}</pre></details>"
        )
    parts += ["<h2>Versions</h2>", f"<pre>{html.escape(yaml.safe_dump(first.versions))}</pre>"]
    parts += (
        ["<h2>Runs</h2><ul>"] + [f"<li><code>{html.escape(r)}</code></li>" for r in runs_list] + ["</ul>"]
    )
    page = (
        f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"<style>{CSS}</style></head><body>{''.join(parts)}</body></html>"
    )
    html_path = out / "report.html"
    html_path.write_text(page)
    return md_path, html_path
