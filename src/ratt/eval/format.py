"""Plain-text renderings of evaluation results (what ``ratt eval`` prints)."""

from __future__ import annotations

from ratt.core.table import text_table
from ratt.eval.flags import Flag
from ratt.eval.suite import EvalResult

NoiseTable = dict[float, dict[str, tuple[float, float]]]


def format_result(result: EvalResult) -> str:
    """Attack, accuracy (%), ± binomial standard error, seconds; then the per-point worst case."""
    rows = [
        [name, f"{100 * acc:.2f}%", f"{100 * result.stderr(name):.2f}", f"{result.seconds[name]:.1f}"]
        for name, acc in result.accuracy.items()
    ]
    rows.append(["worst-case", f"{100 * result.robust:.2f}%", f"{100 * result.stderr('robust'):.2f}", ""])
    table = text_table(["attack", "accuracy", "± s.e.", "seconds"], rows, right=[False, True, True, True])
    return f"{table}\n(n={result.n}; worst-case: a point counts only if every attack above leaves it correct)"


def format_flags(flags: list[Flag]) -> str:
    """One line per check: ``!!`` fired, ``ok`` passed, ``--`` not checked."""
    marks = {True: "!!", False: "ok", None: "--"}
    lines = ["gradient-masking checks:"]
    lines += [f"  {marks[f.fired]} {f.name:<26} {f.detail}" for f in flags]
    return "\n".join(lines)


def format_weight_noise(table: NoiseTable, draws: int) -> str:
    """Sigma, then mean ± std (%) of each attack's accuracy over the draws."""
    if not table:
        return ""
    attacks = list(next(iter(table.values())))
    rows = [
        [f"{sigma:g}", *(f"{100 * m:.2f} ± {100 * s:.2f}" for m, s in (row[a] for a in attacks))]
        for sigma, row in table.items()
    ]
    body = text_table(["sigma", *attacks], rows, right=[False, *[True] * len(attacks)])
    return f"weight noise N(0, (sigma*rms(w))^2), {draws} draws:\n{body}"
