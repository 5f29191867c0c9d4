"""ferlib.features: HOG (emonet §5), Sobel/Laplacian (ferplus §III-B), 68 landmarks, EmoNet's 2,728 vector."""
from __future__ import annotations

import numpy as np
import pytest

from ferlib.features import (EMONET_BOVW_LENGTH, EMONET_HOG_LENGTH, LANDMARKS_LENGTH, as_face_batch,
                             dataset_landmarks, edge_channels, emonet_bovw_features, facial_landmarks,
                             hog_with_picture, landmarks_cache_path, laplacian_image, laplacian_response,
                             sliding_window_hog, sliding_window_hog_layout, sobel_image, sobel_magnitude,
                             whole_face_hog)
from ferlib.features import landmarks as landmarks_module
from ferlib.data.dataset import FERDataset


def _faces(n=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 48, 48), dtype=np.uint8)


def test_feature_lengths():
    layout = sliding_window_hog_layout()
    assert len(layout) == 49 and sum(d * a for _, _, d, a in layout) * 8 == 2592 == EMONET_HOG_LENGTH
    assert sliding_window_hog(_faces()).shape == (3, 2592)
    assert LANDMARKS_LENGTH == 136 and EMONET_BOVW_LENGTH == 2728
    points = np.random.default_rng(1).uniform(0, 47, (3, 68, 2))
    vec = emonet_bovw_features(_faces(), points)
    assert vec.shape == (3, 2728) and vec.dtype == np.float32
    np.testing.assert_allclose(vec[:, 2592:], points.reshape(3, 136), rtol=1e-6)


def test_sliding_window_hog_matches_skimage_on_every_window():
    faces = _faces(4, seed=2)
    fast, reference = sliding_window_hog(faces), sliding_window_hog(faces, backend="skimage")
    assert reference.shape == (4, 2592)  # the count, by running skimage.feature.hog on each window
    np.testing.assert_allclose(fast, reference, atol=1e-6)


def test_vertical_edge_puts_hog_mass_in_the_horizontal_gradient_bin():
    face = np.zeros((1, 48, 48), np.uint8)
    face[:, :, 21:] = 200  # a vertical edge: the gradient points along x, orientation 0 deg -> bin 0
    for hist in (sliding_window_hog(face).reshape(-1, 8), whole_face_hog(face).reshape(-1, 8)):
        totals = hist.sum(axis=0)
        assert totals.argmax() == 0 and totals[0] > 0.9 * totals.sum()
    features, picture = hog_with_picture(face[0])
    assert picture.shape == (48, 48) and picture.max() > 0 and features.shape == (800,)


def test_whole_face_hog_parameters_are_exposed():
    assert whole_face_hog(_faces(2), orientations=9, pixels_per_cell=(6, 6), cells_per_block=(1, 1)).shape == (2, 8 * 8 * 9)
    with pytest.raises(ValueError, match="fewer than one block"):
        whole_face_hog(_faces(1), pixels_per_cell=(32, 32), cells_per_block=(2, 2))


def test_laplacian_of_a_linear_ramp_is_zero_away_from_the_border():
    ramp = np.tile((np.arange(48) * 5).astype(np.uint8), (48, 1))[None]
    ramp2 = np.add.outer(np.arange(48), np.arange(48)).astype(np.uint8)[None] * 2
    for r in (ramp, ramp2):
        lap = laplacian_response(r)
        assert np.abs(lap[:, 1:-1, 1:-1]).max() == 0
        assert np.all(laplacian_image(r)[:, 1:-1, 1:-1] == 128)
    assert np.abs(laplacian_response(_faces(1))).max() > 0  # and it is not zero everywhere


def test_sobel_of_a_constant_image_is_zero_and_a_step_edge_is_not():
    constant = np.full((2, 48, 48), 137, np.uint8)
    assert sobel_magnitude(constant).max() == 0 and sobel_image(constant).max() == 0
    step = np.zeros((1, 48, 48), np.uint8)
    step[:, :, 24:] = 255
    mag = sobel_magnitude(step)
    assert mag[0, 10, 23] == 1020  # (1 + 2 + 1) * 255
    assert sobel_image(step)[0, 10, 23] == round(1020 / np.sqrt(20))
    assert edge_channels(step).shape == (1, 3, 48, 48)


def test_sobel_image_never_saturates_at_the_largest_possible_magnitude():
    corner = np.zeros((1, 3, 3), np.uint8)
    corner[0, 0, :] = 255
    corner[0, 1, 0] = 255  # top row + middle-left: |gx| = 2*255, |gy| = 4*255, the largest 3x3 Sobel magnitude
    assert sobel_magnitude(corner)[0, 1, 1] == pytest.approx(255 * np.sqrt(20), rel=1e-6)
    assert sobel_image(corner)[0, 1, 1] == 255


def test_landmarks_on_astronaut_land_inside_the_face_box():
    from skimage import color, data

    grey = (color.rgb2gray(data.astronaut()) * 255).astype(np.uint8)
    box = (175, 76, 265, 166)  # dlib's frontal detector's box on Eileen Collins' face (512x512 photo, 1 upsample)
    points = facial_landmarks(grey[None], face_box=box, upscale=1)
    assert points.shape == (1, 68, 2) and points.dtype == np.float32
    x, y = points[0, 17:, 0], points[0, 17:, 1]  # brows, nose, eyes, mouth: strictly inside the box
    assert np.all((x >= box[0]) & (x <= box[2]) & (y >= box[1]) & (y <= box[3]))
    margin = 0.15 * (box[2] - box[0])  # the jaw line (0-16) may leave dlib's tight box by a little (chin: 12 px)
    x, y = points[0, :, 0], points[0, :, 1]
    assert np.all((x >= box[0] - margin) & (x <= box[2] + margin) & (y >= box[1] - margin) & (y <= box[3] + margin))
    assert np.all(points[0, 36:48, 1] < points[0, 48:68, 1].min())  # eyes above the mouth
    assert points[0, 36:42, 0].mean() < points[0, 42:48, 0].mean()  # image-left eye left of the right one


def test_dataset_landmarks_are_cached(monkeypatch):
    ds = FERDataset(pixels=_faces(4), labels=np.zeros(4, np.int64), usage=np.array(["Training"] * 4),
                    rows=np.arange(4), source="synthetic", format="synthetic", synthetic=True)
    calls = []
    real = landmarks_module.facial_landmarks
    monkeypatch.setattr(landmarks_module, "facial_landmarks", lambda *a, **k: calls.append(1) or real(*a, **k))
    first = dataset_landmarks(ds)
    assert first.shape == (4, 68, 2) and first.dtype == np.float32 and len(calls) == 1
    assert landmarks_cache_path(ds).is_file()
    second = dataset_landmarks(ds)
    assert len(calls) == 1  # loaded, not recomputed
    np.testing.assert_array_equal(first, second)
    other = FERDataset(pixels=_faces(4, seed=9), labels=ds.labels, usage=ds.usage, rows=ds.rows,
                       source="synthetic", format="synthetic", synthetic=True)
    assert landmarks_cache_path(other) != landmarks_cache_path(ds)  # other pixels, other entry


@pytest.mark.parametrize("bad, message", [
    (np.zeros((48, 48), np.uint8), r"shape \(48, 48\); expected a uint8 array \(N, (48, 48|H, W)\).*faces\[None\]"),
    (np.zeros((2, 32, 32), np.uint8), r"shape \(2, 32, 32\); expected a uint8 array \(N, 48, 48\)"),
    (np.zeros((0, 48, 48), np.uint8), r"empty batch"),
    (np.full((1, 48, 48), np.nan, np.float32), r"2304 non-finite pixels"),
    (np.zeros((1, 48, 48), np.float64), r"dtype float64; expected a uint8 array"),
    (np.zeros((1, 48, 48), np.int32), r"dtype int32; expected a uint8 array"),
    ([["a"]], r"dtype <U1"),
])
@pytest.mark.parametrize("function", [sliding_window_hog, whole_face_hog, sobel_image, laplacian_image,
                                      edge_channels, emonet_bovw_features, as_face_batch])
def test_bad_input_is_one_clear_value_error(function, bad, message):
    if function in (sobel_image, laplacian_image, edge_channels) and np.ndim(bad) == 3 and np.shape(bad)[1:] == (32, 32):
        return  # the edge images take any size
    with pytest.raises(ValueError, match=message):
        function(bad)


def test_bad_landmarks_input_is_a_clear_value_error():
    with pytest.raises(ValueError, match=r"empty batch"):
        facial_landmarks(np.zeros((0, 48, 48), np.uint8))
    with pytest.raises(ValueError, match=r"face_box"):
        facial_landmarks(_faces(1), face_box=(10, 10, 5, 5))
    with pytest.raises(ValueError, match=r"landmarks has shape \(2, 68, 2\); expected \(3, 68, 2\)"):
        emonet_bovw_features(_faces(3), np.zeros((2, 68, 2)))
