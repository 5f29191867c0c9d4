"""FER data: readers, FER+ votes, synthetic faces, normalisation, batched augmentation.

The usual entry points::

    from ferlib.data import load_fer2013, locate_data
    ds = load_fer2013()            # real FER-2013 if found (see discovery), else synthetic faces
    train = ds.split("Training")
"""
from .classes import EMOTIONS, FERPLUS_CLASSES, SPLITS
from .dataset import FERDataset, stratified_subset
from .discovery import load_fer2013, locate_data
from .errors import DataFormatError, DataNotFoundError

__all__ = ["EMOTIONS", "FERPLUS_CLASSES", "SPLITS", "FERDataset", "stratified_subset", "load_fer2013",
           "locate_data", "DataFormatError", "DataNotFoundError"]
