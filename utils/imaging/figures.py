"""Figure files, and the loss curves: what both the train notebook and the figures draw.

:func:`save_figure` saves every figure of the kit as a PNG under the run directory's ``figures/`` and returns that
PNG for a notebook to show. :func:`plot_loss_curves` draws paper Fig. 2 from each model's ``history.csv``: the
train notebook draws its own model's, the figures every model's (utils.eval.plots). Only matplotlib is imported,
by the functions that draw, so the train notebook's start imports no drawing library (docs/performance.md,
"Start-up of each notebook").
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from utils.core.config import model_dir
from utils.core.run_dir import write_bytes_atomic, writes_run_dir

if TYPE_CHECKING:
    import matplotlib.pyplot as plt
    from IPython.display import Image

LOSS_PANELS = {
    "(a) D_Loss and G_GAN loss": ["loss_D", "loss_G_GAN"],
    "(b) G_Loss, G_L1 (train and val)": ["loss_G", "loss_G_L1", "val_loss_G_L1"],
    "(c) val CIEDE2000 (lower is better)": ["val_ciede2000"],
}


def save_figure(fig: plt.Figure, path: Path) -> Image:
    """Save the figure as a PNG, and return that PNG for the notebook to show: drawn once (a returned
    figure would be drawn again by the inline backend, 0.2-0.8 s each), and shown as saved."""
    import matplotlib.pyplot as plt
    from IPython.display import Image

    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, png.getvalue())
    return Image(data=png.getvalue())


@writes_run_dir("the loss curves figures/{name}.png")
def plot_loss_curves(run_dir: str | Path, trained: list[tuple[str, int]], name: str = "loss_curves") -> Image:
    """Paper Fig. 2: loss per epoch, one row per trained (model, seed); saved as figures/<name>.png."""
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    fig, axes = plt.subplots(len(trained), len(LOSS_PANELS), figsize=(16, 3.2 * len(trained)), squeeze=False)
    for row, (model, seed) in zip(axes, trained):
        history = pd.read_csv(model_dir(run_dir, model, seed) / "history.csv")
        for ax, (title, columns) in zip(row, LOSS_PANELS.items()):
            for column in columns:
                ax.plot(history["epoch"], history[column], marker="o", label=column)
            ax.legend(title="loss")
            ylabel = "Delta E00" if columns == ["val_ciede2000"] else "loss (each network minimises its own)"
            ax.set(title=f"{model} model, seed {seed}: {title}", xlabel="epoch", ylabel=ylabel)
            ax.xaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout()
    return save_figure(fig, run_dir / "figures" / f"{name}.png")
