"""One label-order table (FER-2013, FER+, the kit's models) in the code, the README and chapter 00; the
README's predict section names only options the commands have."""
from __future__ import annotations

import re
from pathlib import Path

from ferlib.data.classes import (EMOTIONS, FER2013_TO_FERPLUS, FERPLUS_CLASSES, FERPLUS_TO_FER2013,
                                 label_order_table)

ROOT = Path(__file__).resolve().parent.parent

# the same emotion under each data set's name (written here, not taken from ferlib)
SAME = {"angry": "anger", "disgust": "disgust", "fear": "fear", "happy": "happiness", "sad": "sadness",
        "surprise": "surprise", "neutral": "neutral"}


def table_rows(text: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip().strip("|").split("|")] for line in text.splitlines()
            if re.match(r"^\|\s*\d+\s*\|", line)]


def test_the_table_maps_each_emotion_to_itself():
    rows = table_rows(label_order_table())
    assert [r[0] for r in rows] == [str(i) for i in range(8)]
    assert [r[1] for r in rows[:7]] == list(EMOTIONS) and rows[7][1] == "—"
    assert [r[2] for r in rows] == list(FERPLUS_CLASSES)
    for i, fer in enumerate(EMOTIONS):
        assert FERPLUS_CLASSES[FER2013_TO_FERPLUS[i]] == SAME[fer]
        assert rows[i][3] == f"{fer} → {FER2013_TO_FERPLUS[i]}"
    for j, plus in enumerate(FERPLUS_CLASSES):
        code = FERPLUS_TO_FER2013[j]
        assert (code is None) == (plus == "contempt")
        if code is not None:
            assert SAME[EMOTIONS[code]] == plus and rows[j][4] == f"{plus} → {code}"


def test_the_readme_and_chapter_00_show_the_table():
    readme = (ROOT / "README.md").read_text()
    assert label_order_table() in readme, "README's label table differs from ferlib.data.classes.label_order_table()"
    chapter = (ROOT / "notebooks" / "00_fer2013_up_close.py").read_text()
    assert "display(Markdown(label_order_table()))" in chapter


def test_the_readme_predict_section_names_real_options():
    import argparse

    from ferlib.commands import build_parser

    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Your own photos, folders, videos and a webcam"):]
    section = section[:section.index("\n### ")]
    for command in ("predict", "webcam", "export"):
        assert f"python -m ferlib {command}" in section
    known = {opt for name in ("predict", "webcam", "export") for a in sub.choices[name]._actions
             for opt in a.option_strings}
    named = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", section))
    assert named and named <= known, f"options in the README that no command has: {sorted(named - known)}"
