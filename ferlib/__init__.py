"""ferlib: discriminative deep features for facial expression recognition.

A small tested PyTorch package behind the ferlib notebooks; see README.md.
"""
__version__ = "0.1.0"
