"""w2s: weak-to-strong fine-tuning pipeline."""

__version__ = "0.1.0"
