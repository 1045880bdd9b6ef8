"""Fine-tune on the corrected core: the human-in-the-loop cycle changes the prediction."""

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from napari_gleason._core_sources import FolderSource
from napari_gleason._layers import find_layer, level0, set_layer, show_core
from napari_gleason._qt import PredictWidget
from napari_gleason._session import session_of
from trainer.checkpoint import load_checkpoint
from trainer.data.classes import GLEASON_SCHEME
from trainer.models import build_from_config

CORE = "slide001_core004"  # not in the tiny run's split: a new core the pathologist corrects
G5 = 3
ITERS = 4


def test_finetune_on_an_edited_core_starts_from_the_checkpoint_and_changes_the_prediction(
        train_widget, synthetic_data, tiny_run, tmp_path, wait_idle, run_to_end, qtbot):
    viewer, w = train_widget(synthetic_data, tmp_path / "unused")
    show_core(viewer, FolderSource.open(synthetic_data).load(CORE))
    predict = PredictWidget(viewer)
    viewer.window.add_dock_widget(predict, name="predict")
    predict.device.setCurrentText("cpu")
    predict.offer_checkpoint(tiny_run)  # the model chosen in the predict widget is the session's
    start = (Path(tiny_run) / "best.pt").resolve()
    assert session_of(viewer).checkpoint == str(start)
    assert predict.predict()
    wait_idle(predict)
    before = np.asarray(level0(find_layer(viewer, "probability:G5"))).copy()

    # the pathologist says: this whole core is Gleason 5
    image = find_layer(viewer, "image")
    shape = level0(image).shape[:2]
    set_layer(viewer, "corrected", np.full(shape, G5, np.uint8), core=CORE, scheme=GLEASON_SCHEME, like=image)
    w.finetune._refresh_sources()
    assert w.finetune.source.currentData() == "corrected"
    w.finetune.iters.setValue(ITERS)
    # 0.01, the paper's rate: with the authors' GAF kernel (σ ≈ 0.87 px, zero border) the heat map's
    # weights reach ~50 at texture and at the image frame, and 0.05 made these 4 steps diverge
    w.finetune.lr.setValue(0.01)

    finished = run_to_end(w, w.finetune._on_finetune)
    assert finished is not None and finished.iteration == ITERS and not finished.stopped
    qtbot.waitUntil(lambda: predict.output is not None and predict.busy is False
                    and str(predict.checkpoint_path()) == finished.last_path, timeout=60_000)
    wait_idle(predict)

    # The run really started from the checkpoint's weights, not from a fresh network: every batch
    # norm's counter of training batches went on from the checkpoint's (+ITERS), where a fresh one
    # would count ITERS; and the weights moved little from the checkpoint's, much less than they
    # are from a freshly initialised network's.
    ckpt, tuned = load_checkpoint(start), load_checkpoint(finished.last_path)
    # (PSPNet's encoder stops at layer2: the counters of layer3/4 stay 0 in both)
    counters = [k for k, v in ckpt["model"].items() if k.endswith("num_batches_tracked") and int(v) > 0]
    assert len(counters) > 10 and all(int(ckpt["model"][k]) == ckpt["iteration"] for k in counters)
    assert all(int(tuned["model"][k]) == int(ckpt["model"][k]) + ITERS for k in counters)
    weights = [k for k, v in ckpt["model"].items() if v.is_floating_point() and k.endswith(".weight")]

    def distance(a, b):
        return float(torch.sqrt(sum(((a[k].float() - b[k].float()) ** 2).sum() for k in weights)))

    torch.manual_seed(123)
    fresh = build_from_config(ckpt["model_config"]).state_dict()  # same architecture, fresh initialisation
    assert distance(tuned["model"], ckpt["model"]) < 0.1 * distance(fresh, ckpt["model"])
    assert distance(tuned["model"], ckpt["model"]) > 0, "and it did train"
    assert Path(tuned["config"]["train"]["init"]).resolve() == start
    (entry,) = tuned["config"]["data"]["corrected"]
    assert entry["name"] == CORE
    assert np.unique(np.asarray(Image.open(entry["mask"]))).tolist() == [5]
    assert "-finetune-" in finished.last_path
    # … the fine-tuned weights became the session's checkpoint, and the core was predicted again
    # with them: more G5 than before
    assert session_of(viewer).checkpoint == str(Path(finished.last_path).resolve())
    after = np.asarray(level0(find_layer(viewer, "probability:G5")))
    assert after.shape == before.shape and not np.allclose(after, before)
    assert after.mean() > before.mean()
