"""Matplotlib, headless: the report stage and the methods' own report plots draw through here."""

from pathlib import Path


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed), imported on first use."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, folder: Path, name: str) -> str:
    """Lay out, write `folder/name` at 120 dpi, close; returns the file name (for markdown links)."""
    plt = pyplot()
    fig.tight_layout()
    fig.savefig(Path(folder) / name, dpi=120)
    plt.close(fig)
    return name
