"""Class names and orders of FER-2013 and FER+, and the mapping between them.

FER-2013 (Kaggle / ICML 2013 challenge) codes, in ``fer2013.csv`` order::

    0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, 6 neutral

FER+ (Barsoum et al. 2016, ``fer2013new.csv``) vote columns, in file order::

    neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF

Barsoum et al. (FER+) train on the first 8 (``FERPLUS_CLASSES``); ``unknown`` and ``NF``
(not a face) are not classes.  ``FERPLUS_TO_FER2013[j]`` is the FER-2013 code of
FER+ class ``j`` (``None`` for contempt, which FER-2013 lacks).
"""
from __future__ import annotations

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
NUM_CLASSES = len(EMOTIONS)

FERPLUS_VOTE_COLUMNS: tuple[str, ...] = (
    "neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt",
    "unknown", "NF",
)
FERPLUS_CLASSES: tuple[str, ...] = FERPLUS_VOTE_COLUMNS[:8]

# FER+ class index -> FER-2013 code (contempt has none).
FERPLUS_TO_FER2013: tuple[int | None, ...] = (6, 3, 5, 4, 0, 1, 2, None)
# FER-2013 code -> FER+ class index.
FER2013_TO_FERPLUS: tuple[int, ...] = tuple(
    FERPLUS_TO_FER2013.index(code) for code in range(NUM_CLASSES)
)

SPLITS: tuple[str, ...] = ("Training", "PublicTest", "PrivateTest")
"""Kaggle's Usage values: train, validation (model selection), test (report)."""

# Folder names used by image-folder versions of FER-2013 (msambare's Kaggle layout
# and the common "Emotion-detection" layout), mapped to FER-2013 codes.
FOLDER_CLASS_NAMES: dict[str, int] = {
    "angry": 0, "anger": 0,
    "disgust": 1, "disgusted": 1,
    "fear": 2, "fearful": 2,
    "happy": 3, "happiness": 3,
    "sad": 4, "sadness": 4,
    "surprise": 5, "surprised": 5,
    "neutral": 6,
}


def label_order_table() -> str:
    """The label orders of FER-2013, FER+ and the kit's models, as one Markdown table.

    Index ``i`` is a model's output ``i`` / a file's class code ``i``.  The kit's FER-2013 models
    (every FER-2013 recipe, ``models/*.pt``) output FER-2013's order; its FER+ models (chapter 08)
    FER+'s eight classes.  Every checkpoint records its own ``class_names``, and every output of
    ``python -m ferlib predict`` gives a class index with its name.  The last two columns map one
    order to the other (FER+'s contempt has no FER-2013 class).
    """
    rows = ["| index | FER-2013 (`emotion` in `fer2013.csv`; the kit's FER-2013 models) "
            "| FER+ (`fer2013new.csv` vote columns; the kit's FER+ models) "
            "| FER-2013 class → FER+ index | FER+ class → FER-2013 index |",
            "|---:|---|---|---|---|"]
    for i in range(max(len(EMOTIONS), len(FERPLUS_CLASSES))):
        fer = EMOTIONS[i] if i < len(EMOTIONS) else "—"
        plus = FERPLUS_CLASSES[i] if i < len(FERPLUS_CLASSES) else "—"
        to_plus = f"{fer} → {FER2013_TO_FERPLUS[i]}" if i < len(EMOTIONS) else "—"
        code = FERPLUS_TO_FER2013[i] if i < len(FERPLUS_CLASSES) else None
        to_fer = f"{plus} → {code}" if code is not None else f"{plus} → none" if i < len(FERPLUS_CLASSES) else "—"
        rows.append(f"| {i} | {fer} | {plus} | {to_plus} | {to_fer} |")
    return "\n".join(rows)
