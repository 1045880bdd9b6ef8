"""Fine-tune on the corrected core: the human-in-the-loop cycle changes the prediction."""

from pathlib import Path

import numpy as np
from PIL import Image

from napari_gleason._core_sources import FolderSource
from napari_gleason._layers import find_layer, level0, set_layer, show_core
from napari_gleason._qt import PredictWidget
from trainer.checkpoint import load_checkpoint
from trainer.data.classes import GLEASON_SCHEME

CORE = "slide001_core004"  # not in the tiny run's split: a new core the pathologist corrects
G5 = 3


def test_finetune_on_an_edited_core_changes_the_prediction(train_widget, synthetic_data, tiny_run, tmp_path,
                                                          wait_idle, run_to_end, qtbot):
    viewer, w = train_widget(synthetic_data, tmp_path / "unused")
    show_core(viewer, FolderSource.open(synthetic_data).load(CORE))
    predict = PredictWidget(viewer)
    viewer.window.add_dock_widget(predict, name="predict")
    predict.device.setCurrentText("cpu")
    predict.offer_checkpoint(tiny_run)
    assert predict._on_predict()
    wait_idle(predict)
    before = np.asarray(level0(find_layer(viewer, "probability:G5"))).copy()

    # the pathologist says: this whole core is Gleason 5
    image = find_layer(viewer, "image")
    shape = level0(image).shape[:2]
    set_layer(viewer, "corrected", np.full(shape, G5, np.uint8), core=CORE, scheme=GLEASON_SCHEME, like=image)
    w.finetune._refresh_sources()
    assert w.finetune.source.currentData() == "corrected"
    w.finetune.iters.setValue(4)
    # 0.01, the paper's rate: with the authors' GAF kernel (σ ≈ 0.87 px, zero border) the heat map's
    # weights reach ~50 at texture and at the image frame, and 0.05 made these 4 steps diverge
    w.finetune.lr.setValue(0.01)

    finished = run_to_end(w, w.finetune._on_finetune)
    assert finished is not None and finished.iteration == 4 and not finished.stopped
    qtbot.waitUntil(lambda: predict.output is not None and predict.busy is False
                    and str(predict.checkpoint_path()) == finished.last_path, timeout=60_000)
    wait_idle(predict)

    # the run started from the checkpoint and trained on the corrected core, written in Gleason values
    run = load_checkpoint(finished.last_path)
    assert Path(run["config"]["train"]["init"]).resolve() == (Path(tiny_run) / "best.pt").resolve()
    (entry,) = run["config"]["data"]["corrected"]
    assert entry["name"] == CORE
    assert np.unique(np.asarray(Image.open(entry["mask"]))).tolist() == [5]
    assert "-finetune-" in finished.last_path
    # … and the core was predicted again with the fine-tuned weights: more G5 than before
    after = np.asarray(level0(find_layer(viewer, "probability:G5")))
    assert after.shape == before.shape and not np.allclose(after, before)
    assert after.mean() > before.mean()
