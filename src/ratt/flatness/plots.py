"""Figures of the flatness measures (matplotlib, Agg backend): 1D curves with runs overlaid,
2D contours, weight-noise curves, checkpoint interpolation."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import LogLocator, ScalarFormatter  # noqa: E402

from ratt.core.files import save_figure  # noqa: E402

LOSS_LABEL = "cross-entropy loss (mean over points)"
ADV_TITLES = {
    "fixed": "adversarial loss (PGD x_adv crafted at w, held fixed)",
    "rerun": "adversarial loss (PGD re-run at every point)",
}


def _plain_log_axis(ax) -> None:
    """Log y axis with plain decimal tick labels (0.4, 1, 2) instead of 4x10^-1."""
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_minor_formatter(plt.NullFormatter())
    formatter = ScalarFormatter()
    formatter.set_scientific(False)
    ax.yaxis.set_major_formatter(formatter)


def _titles(adv: str) -> dict[str, str]:
    return {"clean": "clean loss", "adv": ADV_TITLES.get(adv, "adversarial loss")}


def plot_1d(runs: dict[str, dict], path: str | Path, adv: str, subtitle: str) -> None:
    """Loss along random directions, one line per run (mean over directions, band = min..max).

    ``runs``: label -> the ``landscape_1d`` result.
    """
    first = next(iter(runs.values()))
    names = list(first["loss"])
    fig, axes = plt.subplots(1, len(names), figsize=(5.2 * len(names), 4.2), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        for i, (label, res) in enumerate(runs.items()):
            alphas = np.array(res["alphas"])
            curves = np.array(res["loss"][name])
            color = f"C{i}"
            ax.plot(alphas, curves.mean(0), color=color, label=label)
            if len(curves) > 1:
                ax.fill_between(alphas, curves.min(0), curves.max(0), color=color, alpha=0.2, lw=0)
        ax.axvline(0.0, color="0.6", lw=0.8, ls=":")
        _plain_log_axis(ax)
        ax.set_xlabel(
            "α: step along a filter-normalized direction\n(α = 1 moves each filter by its own norm)"
        )
        ax.set_ylabel(LOSS_LABEL + ", log scale")
        ax.set_title(_titles(adv)[name])
        ax.grid(alpha=0.3, which="both")
        ax.legend(
            title=f"run (line: mean of {first['directions']} directions, band: min–max)",
            fontsize=8,
            title_fontsize=8,
        )
    fig.suptitle(f"1D loss landscape — {subtitle}")
    fig.tight_layout()
    save_figure(fig, path, 120)
    plt.close(fig)


def plot_2d(result: dict, label: str, path: str | Path, adv: str, subtitle: str) -> None:
    """Filled contours of log10 loss on the plane of two random directions, one panel per loss."""
    names = list(result["loss"])
    fig, axes = plt.subplots(1, len(names), figsize=(5.4 * len(names), 4.6), squeeze=False)
    a, b = np.meshgrid(np.array(result["alphas"]), np.array(result["betas"]))
    for ax, name in zip(axes[0], names, strict=True):
        z = np.log10(np.maximum(np.array(result["loss"][name]), 1e-12))
        filled = ax.contourf(a, b, z, levels=20, cmap="viridis")
        ax.contour(a, b, z, levels=10, colors="white", linewidths=0.5, alpha=0.6, linestyles="solid")
        ax.plot([0], [0], marker="+", color="red", ms=12, mew=2, label="trained weights w")
        cbar = fig.colorbar(filled, ax=ax)
        cbar.set_label("log10 " + LOSS_LABEL)
        ax.set_xlabel("α (direction 1, filter-normalized)")
        ax.set_ylabel("β (direction 2, filter-normalized)")
        ax.set_title(_titles(adv)[name])
        ax.set_aspect("equal")
        ax.legend(loc="upper right", fontsize=8)
    fig.suptitle(f"2D loss landscape of {label} — {subtitle}")
    fig.tight_layout()
    save_figure(fig, path, 120)
    plt.close(fig)


def plot_noise(runs: dict[str, dict], path: str | Path, adv: str, subtitle: str) -> None:
    """Loss increase over the noise-free loss and accuracy under Gaussian weight noise vs its
    relative size σ (± std over draws). ``runs``: label -> {loss name -> ``noise_curve`` result}.
    """
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    styles = {"clean": "-", "adv": "--"}
    draws = None
    for i, (label, curves) in enumerate(runs.items()):
        for name, curve in curves.items():
            draws = curve["draws"]
            sig = np.array(curve["sigmas"])
            kind = "clean" if name == "clean" else "adversarial"
            base = curve["loss_mean"][curve["sigmas"].index(0.0)] if 0.0 in curve["sigmas"] else 0.0
            for ax, key, scale, shift in ((axes[0], "loss", 1.0, base), (axes[1], "acc", 100.0, 0.0)):
                mean = (np.array(curve[f"{key}_mean"]) - shift) * scale
                std = np.array(curve[f"{key}_std"]) * scale
                ax.errorbar(
                    sig,
                    mean,
                    yerr=std,
                    color=f"C{i}",
                    ls=styles.get(name, ":"),
                    marker="o",
                    ms=3,
                    capsize=2,
                    label=f"{label}, {kind} (L(0) = {base:.3f})" if key == "loss" else f"{label}, {kind}",
                )
    axes[0].axhline(0.0, color="0.6", lw=0.8)
    axes[0].set_ylabel("loss increase L(w + u) − L(w) (cross-entropy)")
    axes[0].set_title("loss increase under weight noise")
    axes[1].set_ylabel("accuracy (%)")
    axes[1].set_title("accuracy under weight noise")
    for ax in axes:
        ax.set_xlabel("σ: noise std relative to each weight tensor's RMS (E‖u‖² = σ²‖w‖²)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    adv_note = {"fixed": "adversarial: x_adv fixed", "rerun": "adversarial: PGD re-run per draw"}.get(adv, "")
    fig.suptitle(
        f"Weight-noise curves — {subtitle}; mean ± std over {draws} draws"
        + (f"; {adv_note}" if adv_note else "")
    )
    fig.tight_layout()
    save_figure(fig, path, 120)
    plt.close(fig)


def plot_interpolation(runs: dict[str, dict], path: str | Path, adv: str, subtitle: str) -> None:
    """Loss on the line between two checkpoints; ``runs``: 'A → B' label -> ``interpolate`` result."""
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    styles = {"clean": "-", "adv": "--"}
    for i, (label, res) in enumerate(runs.items()):
        for name, values in res["loss"].items():
            kind = "clean" if name == "clean" else "adversarial"
            ax.plot(res["t"], values, color=f"C{i}", ls=styles.get(name, ":"), label=f"{label}, {kind}")
    for t in (0.0, 1.0):
        ax.axvline(t, color="0.6", lw=0.8, ls=":")
    _plain_log_axis(ax)
    ax.set_xlabel("t: weights (1 − t)·w_A + t·w_B (t = 0: run A, t = 1: run B)")
    ax.set_ylabel(LOSS_LABEL + ", log scale")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    ax.set_title(f"Linear interpolation between checkpoints\n{subtitle}", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, 120)
    plt.close(fig)
