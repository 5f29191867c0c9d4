"""Evaluation: metrics, k-NN, ensembles, confusion matrices."""
