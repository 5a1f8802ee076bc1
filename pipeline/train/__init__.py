"""Training: `loop` (fine-tuning on accelerate), `head` (linear head on frozen features),
`early_stopping` (best-checkpoint selection both use)."""
