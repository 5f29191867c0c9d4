"""FER-2013 readers on fixture files in each exact format, and every bad input's message."""
from __future__ import annotations

import io
import lzma

import numpy as np
import pytest
from PIL import Image

from conftest import pixels_text, tiny_rows, write_fer2013_csv
from ferlib.data.classes import EMOTIONS
from ferlib.data.errors import DataFormatError
from ferlib.data.readers import read_fer2013_csv, read_image_folder, read_npz_xz


def _check_same(ds, rows):
    assert len(ds) == len(rows)
    np.testing.assert_array_equal(ds.pixels, np.stack([p for _, p, _ in rows]))
    np.testing.assert_array_equal(ds.labels, [e for e, _, _ in rows])
    assert list(ds.usage) == [u for _, _, u in rows]
    assert ds.pixels.dtype == np.uint8 and ds.labels.dtype == np.int64


def test_fer2013_csv(tiny_csv):
    path, rows = tiny_csv
    ds = read_fer2013_csv(path)
    _check_same(ds, rows)
    assert ds.format == "fer2013.csv" and not ds.synthetic
    assert ds.split_counts() == {"Training": 7, "PublicTest": 7, "PrivateTest": 7}


def test_icml_face_data_csv_with_leading_spaces(tmp_path):
    rows = tiny_rows(seed=1)
    ds = read_fer2013_csv(write_fer2013_csv(tmp_path / "icml_face_data.csv", rows, icml=True))
    _check_same(ds, rows)
    assert ds.format == "icml_face_data.csv"


def test_npz_xz(tmp_path):
    rows = tiny_rows(seed=2)
    buf = io.BytesIO()
    np.savez(buf, pixels=np.stack([p for _, p, _ in rows]), emotion=np.array([e for e, _, _ in rows], np.uint8),
             usage=np.array([u for _, _, u in rows]))
    path = tmp_path / "fer2013.npz.xz"
    path.write_bytes(lzma.compress(buf.getvalue()))
    _check_same(read_npz_xz(path), rows)


def _write_folder(root, rows, *, prefix=True, ext=".png"):
    counters = {}
    for e, p, u in rows:
        half = "train" if u == "Training" else "test"
        d = root / half / EMOTIONS[e]
        d.mkdir(parents=True, exist_ok=True)
        n = counters[u] = counters.get(u, 0) + 1
        name = f"{u}_{n:05d}{ext}" if prefix else f"im{n}{ext}"
        Image.fromarray(p).save(d / name)


def test_image_folder(tmp_path):
    rows = tiny_rows(seed=3)
    _write_folder(tmp_path, rows)
    ds = read_image_folder(tmp_path)
    assert ds.format == "image-folder"
    assert ds.split_counts() == {"Training": 7, "PublicTest": 7, "PrivateTest": 7}
    # lossless PNG: every fixture image comes back with its label and split
    got = {(ds.pixels[i].tobytes(), int(ds.labels[i]), ds.usage[i]) for i in range(len(ds))}
    assert got == {(p.tobytes(), e, u) for e, p, u in rows}


# ------------------------------------------------------------------ bad input

def _bad_csv(tmp_path, mutate):
    rows = tiny_rows(n_per_split=2)
    lines = ["emotion,pixels,Usage"] + [f"{e},{pixels_text(p)},{u}" for e, p, u in rows]
    lines = mutate(lines)
    path = tmp_path / "fer2013.csv"
    path.write_text("\n".join(lines) + ("\n" if lines else ""))
    return path


def _expect(path, *fragments):
    with pytest.raises(DataFormatError) as err:
        read_fer2013_csv(path)
    msg = str(err.value)
    assert str(path) in msg and "fix:" in msg, msg
    for frag in fragments:
        assert frag in msg, f"{frag!r} not in {msg!r}"
    return err.value


def test_row_with_2303_pixels(tmp_path):
    def cut(lines):
        e, px, u = lines[3].split(",")
        lines[3] = f"{e},{' '.join(px.split()[:-1])},{u}"
        return lines
    e = _expect(_bad_csv(tmp_path, cut), "row 2 (line 4)", "2303 pixel values, expected 2304")
    assert e.where == "row 2 (line 4)"


def test_non_numeric_pixel(tmp_path):
    def spoil(lines):
        e, px, u = lines[2].split(",")
        toks = px.split()
        toks[17] = "4x"
        lines[2] = f"{e},{' '.join(toks)},{u}"
        return lines
    _expect(_bad_csv(tmp_path, spoil), "row 1 (line 3)", "pixel 17 is '4x'")


def test_pixel_out_of_range(tmp_path):
    def spoil(lines):
        e, px, u = lines[1].split(",")
        lines[1] = f"{e},256{px[px.index(' '):]},{u}"
        return lines
    _expect(_bad_csv(tmp_path, spoil), "row 0 (line 2)", "pixel 0 is 256")


def test_label_7(tmp_path):
    def spoil(lines):
        lines[5] = "7" + lines[5][1:]
        return lines
    _expect(_bad_csv(tmp_path, spoil), "row 4 (line 6)", "emotion '7' is not a class code 0..6")


def test_unknown_usage(tmp_path):
    def spoil(lines):
        lines[2] = lines[2].rsplit(",", 1)[0] + ",Validation"
        return lines
    _expect(_bad_csv(tmp_path, spoil), "row 1 (line 3)", "Usage 'Validation'")


def test_missing_column(tmp_path):
    def spoil(lines):
        return ["emotion,pixels"] + [l.rsplit(",", 1)[0] for l in lines[1:]]
    _expect(_bad_csv(tmp_path, spoil), "missing column(s) 'Usage'", "line 1")


def test_empty_file(tmp_path):
    path = tmp_path / "fer2013.csv"
    path.write_text("")
    _expect(path, "the file is empty")


def test_header_only(tmp_path):
    _expect(_bad_csv(tmp_path, lambda lines: lines[:1]), "no rows")


def test_missing_split(tmp_path):
    _expect(_bad_csv(tmp_path, lambda lines: [l for l in lines if not l.endswith("PrivateTest")]),
            "no rows for split(s) PrivateTest")


def test_unreadable_image(tmp_path):
    _write_folder(tmp_path, tiny_rows(n_per_split=1))
    bad = tmp_path / "train" / "angry" / "Training_99999.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(DataFormatError) as err:
        read_image_folder(tmp_path)
    assert str(bad) in str(err.value) and "unreadable image" in str(err.value)


def test_wrongly_sized_image(tmp_path):
    _write_folder(tmp_path, tiny_rows(n_per_split=1))
    bad = tmp_path / "test" / "angry" / "PublicTest_99999.png"
    Image.fromarray(np.zeros((64, 48), np.uint8)).save(bad)
    with pytest.raises(DataFormatError) as err:
        read_image_folder(tmp_path)
    assert str(bad) in str(err.value) and "48x64, expected 48x48" in str(err.value)


def test_test_image_without_prefix(tmp_path):
    _write_folder(tmp_path, tiny_rows(n_per_split=1), prefix=False)
    with pytest.raises(DataFormatError, match="without a PublicTest_/PrivateTest_ prefix"):
        read_image_folder(tmp_path)


def test_unknown_class_folder(tmp_path):
    _write_folder(tmp_path, tiny_rows(n_per_split=1))
    (tmp_path / "train" / "bored").mkdir()
    with pytest.raises(DataFormatError, match="unknown class folder 'bored'"):
        read_image_folder(tmp_path)


# ------------------------------------------------------------------ real data

def test_real_counts(real_fer2013):
    ds = real_fer2013
    assert ds.split_counts() == {"Training": 28709, "PublicTest": 3589, "PrivateTest": 3589}
    assert list(ds.class_counts("Training").values()) == [3995, 436, 4097, 7215, 4830, 3171, 4965]
    assert list(ds.class_counts("PublicTest").values()) == [467, 56, 496, 895, 653, 415, 607]
    assert list(ds.class_counts("PrivateTest").values()) == [491, 55, 528, 879, 594, 416, 626]
    # head rows, as the data README lists them
    assert list(ds.labels[:5]) == [0, 0, 2, 4, 6]
    assert list(ds.pixels[0].ravel()[:16]) == [70, 80, 82, 72, 58, 58, 60, 63, 54, 58, 60, 48, 89, 115, 121, 119]


@pytest.mark.slow  # writes and parses the 300 MB CSV: ~80 s on 2 cores
def test_real_csv_round_trip(real_fer2013, tmp_path, monkeypatch):
    """Rebuild fer2013.csv byte for byte as the data README says, read it, compare with the array file."""
    import hashlib

    ds = real_fer2013
    path = tmp_path / "fer2013.csv"
    with open(path, "w", newline="\n") as f:
        f.write("emotion,pixels,Usage\n")
        for i in range(len(ds)):
            f.write(f"{ds.labels[i]},{' '.join(map(str, ds.pixels[i].ravel()))},{ds.usage[i]}\n")
    assert hashlib.md5(path.read_bytes()).hexdigest() == "f8428a1edbd21e88f42c73edd2a14f95"
    back = read_fer2013_csv(path)
    np.testing.assert_array_equal(back.pixels, ds.pixels)
    np.testing.assert_array_equal(back.labels, ds.labels)
    np.testing.assert_array_equal(back.usage, ds.usage)
    # the second load through discovery reads the cache entry, not the CSV
    from ferlib.data import discovery
    from ferlib.data.cache import cache_path

    parsed = _count_parses(monkeypatch)
    first = discovery.load_fer2013(path, verbose=False)
    again = discovery.load_fer2013(path, verbose=False)
    assert parsed == [path] and cache_path(path).is_file()
    for a in (first, again):
        np.testing.assert_array_equal(a.pixels, ds.pixels)
        np.testing.assert_array_equal(a.labels, ds.labels)
        np.testing.assert_array_equal(a.usage, ds.usage)
        assert a.format == "fer2013.csv"


# ------------------------------------------------------------------ the parse cache

def _count_parses(monkeypatch) -> list:
    """Discovery's CSV reader, recording each path it parses."""
    from ferlib.data import discovery

    calls, real = [], discovery.read_fer2013_csv

    def counting(p):
        calls.append(p)
        return real(p)

    monkeypatch.setattr(discovery, "read_fer2013_csv", counting)
    return calls


def test_second_load_reads_the_cache(tiny_csv, monkeypatch, capsys):
    """Parsed once, then loaded from the cache file with identical arrays; an edited CSV is parsed again."""
    import os

    from ferlib.data.cache import cache_dir, cache_path
    from ferlib.data.discovery import load_fer2013

    path, rows = tiny_csv
    parsed = _count_parses(monkeypatch)
    first = load_fer2013(path)
    entry = cache_path(path)
    assert parsed == [path] and entry.is_file() and entry.parent == cache_dir()
    assert f"parsed; cached as {entry}" in capsys.readouterr().err
    written = entry.stat().st_mtime_ns
    again = load_fer2013(path)
    assert parsed == [path], "the second load parsed the CSV again"
    assert f"loaded from cache {entry}" in capsys.readouterr().err
    assert entry.stat().st_mtime_ns == written  # read, not rewritten
    for name in ("pixels", "labels", "usage", "rows"):
        a, b = getattr(first, name), getattr(again, name)
        assert a.dtype == b.dtype, name
        np.testing.assert_array_equal(a, b)
    assert again.format == first.format == "fer2013.csv" and again.source == str(path)
    np.testing.assert_array_equal(again.pixels[0], rows[0][1])
    # use_cache=False parses; an edited file (new mtime) has a new key and is parsed again
    load_fer2013(path, use_cache=False, verbose=False)
    assert parsed == [path, path]
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    load_fer2013(path, verbose=False)
    assert parsed == [path, path, path] and cache_path(path) != entry
