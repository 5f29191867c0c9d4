"""Training: the trainer, recipes, checkpoints and results files."""
