"""ferlib.data.quality: exact duplicates, test images leaked into Training, conflicting labels, blanks."""
import numpy as np

from ferlib.data.dataset import FERDataset
from ferlib.data.quality import (blank_images, conflicting_groups, duplicate_group_ids, leaked_test_images,
                                 quality_report)


def _dataset():
    rng = np.random.default_rng(0)
    px = rng.integers(0, 256, size=(10, 48, 48), dtype=np.uint8)
    px[5] = px[0]  # PublicTest copy of Training row 0, same label
    px[6] = px[1]  # PublicTest copy of Training row 1, other label: a conflict and a leak
    px[8] = px[2]  # PrivateTest copy of Training row 2, same label
    px[3] = px[4]  # two Training rows, same image, same label
    px[7] = 17  # blank
    px[9] = 0  # blank
    labels = np.array([0, 1, 2, 3, 3, 0, 4, 5, 2, 6])
    usage = np.array(["Training"] * 5 + ["PublicTest"] * 3 + ["PrivateTest"] * 2)
    return FERDataset(px, labels, usage, np.arange(10), "test", "fer2013.csv")


def test_duplicates_blanks_conflicts_and_leaks():
    ds = _dataset()
    group = duplicate_group_ids(ds.pixels)
    np.testing.assert_array_equal(group, [0, 1, 2, 3, 3, 0, 1, 7, 2, 9])
    np.testing.assert_array_equal(blank_images(ds.pixels), [7, 9])
    conflicts = conflicting_groups(ds)
    assert len(conflicts) == 1 and conflicts[0].tolist() == [1, 6]
    assert leaked_test_images(ds) == [
        {"split": "PublicTest", "images": 3, "in_training": 2, "same_label": 1},
        {"split": "PrivateTest", "images": 2, "in_training": 1, "same_label": 1}]
    report = quality_report(ds)
    assert report.as_dict() == {"duplicate_groups": 4, "duplicate_rows": 8, "distinct_images": 6,
                                "test_rows_in_training": 3, "conflicting_groups": 1, "blank_images": 2}


def test_clean_dataset_has_no_defects():
    rng = np.random.default_rng(1)
    px = rng.integers(1, 255, size=(4, 48, 48), dtype=np.uint8)
    ds = FERDataset(px, np.arange(4) % 2, np.array(["Training", "Training", "PublicTest", "PrivateTest"]),
                    np.arange(4), "test", "fer2013.csv")
    assert conflicting_groups(ds) == [] and len(blank_images(ds.pixels)) == 0
    assert quality_report(ds).duplicate_groups == 0
