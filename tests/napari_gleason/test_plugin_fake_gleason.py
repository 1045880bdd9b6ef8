"""The reader on the data engineer's format-faithful Gleason 2019 fake (tests/fakes.py):
palette, grey and RGB mask PNGs, value 6 for benign, JPEG images, non-ASCII names, cores that
lack experts, and one core nobody annotated."""

import numpy as np
import pytest

from napari_gleason._reader import napari_get_reader

fakes = pytest.importorskip("tests.fakes")  # tests/fakes.py

#: Gleason raw value -> label value shown (0, 1, 6 are benign, shown as 1; grades keep theirs).
SHOWN = {0: 1, 1: 1, 6: 1, 3: 3, 4: 4, 5: 5}


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    return fakes.make_fake_gleason(tmp_path_factory.mktemp("fake") / "Gleason 2019")


def test_every_annotated_core_opens_with_exactly_its_experts(fake):
    for core, experts in fake.cores.items():
        if not experts:
            continue
        path = fake.root / "Train Imgs" / f"{core}.jpg"
        tuples = napari_get_reader(str(path))(str(path))
        roles = [kw["metadata"]["napari_gleason"]["role"] for _, kw, _ in tuples]
        assert roles == ["image", *(f"expert:{e}" for e in sorted(experts))], core
        assert tuples[0][0].shape[:2] == fake.images[core].shape[:2]
        for (data, kw, _), expert in zip(tuples[1:], sorted(experts)):
            raw = fake.raw[(core, expert)]
            np.testing.assert_array_equal(data, np.vectorize(SHOWN.get)(raw).astype(np.uint8))


def test_dataset_folder_is_taken(fake):
    assert callable(napari_get_reader(str(fake.root)))
