"""16-bit PNG, DICOM, RGBA and palette images -> 8-bit files, windowed and written once."""

import numpy as np
import pytest
from PIL import Image

from radvlm_verl.converters.images import ImageStore, image_to_8bit, read_dicom, to_uint8, window_to_uint8
from radvlm_verl.testing.cxr_layouts import gradient, write_dicom, write_image


def test_window_hand_values():
    assert window_to_uint8(np.array([0, 60, 100, 150]), 0, 100).tolist() == [0, 153, 255, 255]
    assert to_uint8(np.array([[1000, 2000], [3000, 5000]])).tolist() == [[0, 64], [128, 255]]
    assert to_uint8(np.full((2, 2), 7)).tolist() == [[0, 0], [0, 0]]  # flat image: no division by zero


def test_16bit_png_is_windowed_not_saturated(tmp_path):
    src = write_image(tmp_path / "a.png", 90, 60, kind="I;16")
    with Image.open(src) as im:
        assert im.mode.startswith("I")
        naive = np.asarray(im.convert("RGB"))
        raw = np.asarray(im).astype(float)
    assert (naive == 255).mean() > 0.99  # what qwen_vl_utils would feed the model
    store = ImageStore(tmp_path / "out")
    path, w, h = store.prepare(src, "a")
    assert (w, h) == (90, 60) and path == (tmp_path / "out" / "minmax" / "a.png").resolve()
    with Image.open(path) as out:
        assert out.mode == "L"
        arr = np.asarray(out).astype(float)
    assert arr.min() == 0 and arr.max() == 255
    assert (arr == 255).mean() < 0.01
    expected = np.rint((raw - raw.min()) * 255 / (raw.max() - raw.min()))
    assert np.abs(arr - expected).max() <= 1
    assert np.corrcoef(arr.ravel(), raw.ravel())[0, 1] > 0.999


def test_conversion_happens_once_and_is_reproducible(tmp_path):
    src = write_image(tmp_path / "a.png", 40, 30, kind="I;16")
    store = ImageStore(tmp_path / "out")
    path, *_ = store.prepare(src, "sub/a")
    first = path.read_bytes()
    mtime = path.stat().st_mtime_ns
    again = ImageStore(tmp_path / "out")
    assert again.prepare(src, "sub/a")[0] == path
    assert (again.converted, again.reused) == (0, 1) and path.stat().st_mtime_ns == mtime
    path.unlink()
    ImageStore(tmp_path / "out").prepare(src, "sub/a")
    assert path.read_bytes() == first
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_another_window_never_reuses_files_of_the_first(tmp_path):
    src = write_image(tmp_path / "a.png", 40, 30, kind="I;16")
    minmax, *_ = ImageStore(tmp_path / "out", "minmax").prepare(src, "a")
    store = ImageStore(tmp_path / "out", "percentile")
    percentile, *_ = store.prepare(src, "a")
    assert percentile != minmax and (store.converted, store.reused) == (1, 0)
    with Image.open(src) as im:
        raw = np.asarray(im).astype(float)
    low, high = np.percentile(raw, [0.5, 99.5])
    expected = np.clip(np.rint((raw - low) * 255 / (high - low)), 0, 255)
    with Image.open(percentile) as out:
        assert np.abs(np.asarray(out).astype(float) - expected).max() <= 1


def test_8bit_files_are_used_in_place(tmp_path):
    jpg = write_image(tmp_path / "a.jpg", 50, 70)
    assert ImageStore(tmp_path / "out").prepare(jpg, "a") == (jpg, 50, 70)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", ["RGBA", "P"])
def test_rgba_and_palette_become_grey(tmp_path, kind):
    src = write_image(tmp_path / "a.png", 33, 21, kind=kind)
    path, w, h = ImageStore(tmp_path / "out").prepare(src, "a")
    with Image.open(path) as out:
        assert out.mode == "L" and out.size == (33, 21) == (w, h)
        expected = gradient(33, 21).astype(np.uint8)
        assert np.abs(np.asarray(out).astype(int) - expected).max() <= 1


def test_rgba_transparency_composited_on_black():
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[..., :3] = 200
    rgba[0, 0, 3] = 255  # one opaque pixel, the rest transparent
    out = np.asarray(image_to_8bit(Image.fromarray(rgba, mode="RGBA")))
    assert out.tolist() == [[200, 0], [0, 0]]


def test_dicom_minmax_monochrome1_and_voi_window(tmp_path):
    pytest.importorskip("pydicom")
    raw = gradient(48, 32, low=100, high=4000, seed=3).astype(np.uint16).astype(float)
    m2 = read_dicom(write_dicom(tmp_path / "a.dicom", 48, 32, seed=3))
    assert m2.shape == (32, 48) and m2.dtype == np.uint8
    expected = np.rint((raw - raw.min()) * 255 / (raw.max() - raw.min()))
    assert np.abs(m2 - expected).max() <= 1
    m1 = read_dicom(write_dicom(tmp_path / "b.dicom", 48, 32, seed=3, monochrome1=True))
    assert np.array_equal(m1, 255 - m2)  # MONOCHROME1: low values are white
    # VOI window centre 2000, width 1001: values <= 1500 black, >= 2500 white
    voi = read_dicom(write_dicom(tmp_path / "c.dicom", 48, 32, seed=3, window=(2000, 1001)), window="dicom")
    assert (voi[raw <= 1499] == 0).all() and (voi[raw >= 2500] == 255).all()
    # modality rescale does not change a min-max window
    scaled = read_dicom(write_dicom(tmp_path / "d.dicom", 48, 32, seed=3, slope=2.0, intercept=-1024))
    assert np.abs(scaled.astype(int) - m2.astype(int)).max() <= 1


def test_dicom_store_writes_png_with_dicom_size(tmp_path):
    pytest.importorskip("pydicom")
    src = write_dicom(tmp_path / "x.dicom", 60, 44)
    path, w, h = ImageStore(tmp_path / "out").prepare(src, "train/x")
    assert (w, h) == (60, 44) and path.suffix == ".png"
    with Image.open(path) as im:
        assert im.mode == "L" and im.size == (60, 44)
