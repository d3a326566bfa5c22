"""Learning curves (loss, accuracy, learning rate per epoch) from a train_cookbook.py log.

python examples/plot_curves.py runs/cookbook/log.json [-o curves.png]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def plot(log_path: str | Path, png_path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # files only; no display needed
    import matplotlib.pyplot as plt

    data = json.loads(Path(log_path).read_text())
    epochs = [r["epoch"] for r in data["epochs"]]
    if not epochs:
        raise ValueError(f"{log_path} has no epochs to plot")
    col = lambda key: [r[key] for r in data["epochs"]]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    axes[0].plot(epochs, col("train_loss"), "o-", label="train (mixed)")
    axes[0].plot(epochs, col("val_loss"), "s-", label="val")
    axes[0].set_ylabel("loss")
    axes[1].plot(epochs, col("train_acc"), "o-", label="train (dominant label)")
    axes[1].plot(epochs, col("val_acc"), "s-", label="val")
    summary = data.get("summary")
    if summary is not None:
        axes[1].axhline(summary["test_acc"], color="k", ls=":", label="test (final)")
    axes[1].set_ylabel("top-1 accuracy (%)")
    axes[2].plot(epochs, col("lr"), "o-")
    axes[2].set_ylabel("learning rate (epoch start)")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].legend()
    axes[1].legend(loc="lower right")
    args = data.get("args", {})
    title = f"digits 32x32, ops={args.get('ops', '?')}"
    if summary is not None:
        title += (
            f": test {summary['test_acc']:.2f}% in {summary['wall_seconds']:.0f} s "
            f"({summary['world_size']} process{'es' if summary['world_size'] > 1 else ''})"
        )
    fig.suptitle(title)
    fig.tight_layout()
    png_path = Path(png_path)
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return png_path


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("log", help="log.json written by train_cookbook.py")
    p.add_argument("-o", "--output", default=None, help="PNG path (default: beside the log)")
    args = p.parse_args(argv)
    out = args.output or Path(args.log).with_name("curves.png")
    print(plot(args.log, out))


if __name__ == "__main__":
    main()
