"""Bad input to the train widget: a notification saying what to do, and the widget back at rest."""

import shutil

import numpy as np
import pytest
import torch
from helpers_plugin import errors_of
from PIL import Image

from napari_gleason._train_status import TrainState
from trainer.data import open_dataset
from trainer.data.splits import paper_split


def test_core_whose_masks_do_not_match_names_the_file(train_widget, synthetic_data, tmp_path, run_to_end, notes):
    data = shutil.copytree(synthetic_data, tmp_path / "data")
    bad = []
    for name in paper_split(open_dataset(data)).train:  # every training core: the first batch hits one
        path = data / "Maps1_T" / f"{name}_classimg_nonconvex.png"
        Image.fromarray(np.ones((40, 50), np.uint8)).save(path)
        bad.append(path.name)
    viewer, w = train_widget(data, tmp_path / "run")
    assert run_to_end(w, w._on_start) is None
    message = errors_of(notes)[-1]
    assert any(name in message for name in bad), message
    assert "Fix or remove that file" in message
    assert w.status.state is TrainState.CRASHED and w.status.resting
    assert w._start.isEnabled() and not w._stop.isEnabled() and not w.runner.running


def test_start_checkpoint_of_another_architecture(train_widget, synthetic_data, tiny_run, tmp_path, run_to_end,
                                                  notes):
    viewer, w = train_widget(synthetic_data, tmp_path / "run", init=f"{tiny_run}/best.pt", model="unet")
    assert run_to_end(w, w._on_start) is None
    message = errors_of(notes)[-1]
    assert "pspnet" in message and "unet" in message and "best.pt" in message
    assert w.status.state is TrainState.CRASHED and w._start.isEnabled()


def test_cuda_chosen_where_none_exists(train_widget, synthetic_data, tmp_path, run_to_end, notes):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    viewer, w = train_widget(synthetic_data, tmp_path / "run")
    assert "cuda" not in [w.device.itemText(i) for i in range(w.device.count())]
    w.device.addItem("cuda")
    w.device.setCurrentText("cuda")
    assert run_to_end(w, w._on_start) is None
    assert "no CUDA device" in errors_of(notes)[-1]
    assert w.status.resting and w._start.isEnabled()


def test_form_errors_never_start_a_run(train_widget, synthetic_data, tmp_path, notes):
    viewer, w = train_widget(tmp_path / "missing", tmp_path / "run")
    assert w._on_start() is False
    assert "does not exist" in errors_of(notes)[-1] and w.status.state is TrainState.IDLE
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "last.pt").write_bytes(b"x")
    w.data.setText(str(synthetic_data))
    w.out.setText(str(tmp_path / "old"))
    assert w._on_start() is False
    assert "already holds a run" in errors_of(notes)[-1]
    assert not w.runner.running
