"""The bad-input catalogue's table (tests/test_bad_input_catalogue.py runs it): every row names the
issue the input comes from, the entry point that meets it, how the input is broken, the needles its
message must hold, and the maker (tests/broken_*.py) that builds it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.broken_checkpoints import (
    ckpt_damaged_confusion, ckpt_empty_run_folder, ckpt_foreign, ckpt_garbage, ckpt_missing, ckpt_newer_format,
    ckpt_other_architecture, ckpt_pickle_payload, ckpt_six_classes, ckpt_three_classes, ckpt_truncated, tiny_best,
)
from tests.broken_data import UNSAMPLED, three_broken_files, value_7_on_unsampled_core
from tests.broken_inputs import (
    CORE, DISK_FULL, MASK, READ_ONLY, Ctx, broken_classes_json, config, corrupt_corrected_mask,
    corrupt_image, drop_training_experts, earlier_run, empty_expert_folder, core_named, export_core_named,
    export_cli, export_into, predict_into_expert_folder, float_image, full_disk_at_first_checkpoint, garbage_chunks,
    garbage_json, generic, gleason, image_of, init_from, mask_value_7, new_folder, newer_format,
    no_expert_folders, opens, predict_cli, remove, rename_all_masks, resize_every_mask, resize_mask, review_store,
    rgb_mask_channels_differ, settings, split_file, synth_into_full_folder, train_on, truncate_image, with_file,
    without_cuda,
)
from tests.broken_inputs import broken_geojson, qupath_generic
from tests.broken_inputs import DISK_FULL_AT_WRITE, full_disk_at_next_checkpoint, predict_on_full_disk
from tests.broken_inputs import damage_chunk
from tests.broken_widgets import (
    a_file, beside, broken, browser, export_file, finetune, predict_widget, stop_before_start, to_store, train_start,
    under_a_file,
)
from tests.broken_widgets import browser_damaged_core


CLI, PLUGIN, READER, WIDGET = "CLI", "plugin", "reader", "widget"


@dataclass(frozen=True)
class Row:
    id: str
    issue: int
    entry: str  # CLI | plugin | reader | widget
    how: str  # how the input is broken
    needles: tuple[str, ...]  # what the message must hold: the file's name and the reason
    make: Callable  # (Ctx) -> argv (CLI) | a call (plugin) | a path (reader) | an action (widget)
    code: int = 2  # the CLI's exit code
    # the failure comes after training started: the run's own log (config.json, events.jsonl) may
    # record it; every other file, checkpoints included, must stay as it was
    run_started: bool = False
    # the layers it must add (the core opens without the bad mask: one warning, not an error)
    opens_with: tuple[str, ...] | None = None


#: A QuPath dataset whose GeoJSON expert is broken opens its first core with the PNG expert.
QUPATH_OPENS = ("a", "expert:ann")


def _broken_gleason(ctx: Ctx) -> Path:
    root = gleason(ctx)
    three_broken_files(root)
    return root


# --- the table -----------------------------------------------------------------------------------
ROWS = [
    # CLI: python -m trainer … — data (issue 2)
    Row("cli-data-missing", 2, CLI, "--data names no folder", ("/no such folder: ", "does not exist"),
        train_on(data=new_folder("no such folder", "absent"))),
    Row("cli-data-empty", 2, CLI, "--data is an empty folder", ("/empty: ", "not a dataset folder"),
        train_on(data=new_folder("empty", "empty"))),
    Row("cli-data-no-layout", 2, CLI, "--data holds neither layout", ("/plain: ", "not a dataset folder"),
        train_on(data=new_folder("plain", "text"))),
    Row("cli-data-is-an-image", 2, CLI, "--data is a core's image, not the dataset", (f"{CORE}.jpg", "not a folder"),
        train_on(data=image_of)),
    Row("cli-image-corrupt", 2, CLI, "a core image holds no JPEG", (f"{CORE}.jpg", "not an image Pillow can read"),
        train_on(corrupt_image)),
    Row("cli-image-truncated", 2, CLI, "a core image cut in half", (f"{CORE}.jpg", "truncated"),
        train_on(truncate_image)),
    Row("cli-image-float", 2, CLI, "a core image of 32-bit floats", (f"{CORE}.tif", "unsupported image mode"),
        train_on(float_image)),
    Row("cli-mask-size", 2, CLI, "a mask 10×10, its image 40×48", (MASK, "differs from its image"),
        train_on(resize_mask)),
    Row("cli-mask-values", 2, CLI, "a mask holds the value 7", (MASK, "values [7]"), train_on(mask_value_7)),
    Row("cli-mask-rgb-colours", 2, CLI, "an RGB mask whose channels differ", (MASK, "channels differ"),
        train_on(rgb_mask_channels_differ)),
    Row("cli-expert-folder-empty", 2, CLI, "Maps1_T/ holds no mask", ("/Maps1_T: ", "holds no"),
        train_on(empty_expert_folder)),
    Row("cli-no-expert-folders", 2, CLI, "no Maps*_T/ at all", ("/data set é: ", "no expert mask folder"),
        train_on(no_expert_folders)),
    Row("cli-training-experts-missing", 2, CLI, "--train-experts 1,3,4 but experts 3 and 4 are missing "
        "(without the flag the default split trains on experts 1, 2, 5, 6)",
        ("/data set é: ", "experts ['3', '4'] not found"),
        train_on(drop_training_experts, args=("--train-experts", "1,3,4"))),
    Row("cli-mask-on-unsampled-core", 12, CLI, "a mask holds 7 on a core training never samples (the check finds it)",
        (f"{UNSAMPLED}_classimg_nonconvex.png", "values [7]"), train_on(value_7_on_unsampled_core)),
    Row("cli-check-three-problems", 12, CLI, "check: three broken files on three cores, one run",
        ("/data set é: ", "3 problems"), lambda ctx: ["check", "--data", str(_broken_gleason(ctx))]),
    Row("cli-unknown-training-expert", 2, CLI, "--train-experts 9", ("/data set é: ", "experts ['9'] not found"),
        train_on(args=("--train-experts", "9"))),
    Row("cli-generic-classes-json", 2, CLI, "classes.json is not JSON", ("classes.json", "cannot read class"),
        train_on(broken_classes_json, layout=generic)),
    Row("cli-split-unknown-core", 2, CLI, "the split file names a core that does not exist",
        ("split.json", "nope_core"), split_file('{"train": ["nope_core"], "val": [], "test": []}')),
    Row("cli-split-name-leads-out", 12, CLI, "the split file names a core '../Maps1_T/x'",
        ("split.json", "not a plain name"), split_file('{"train": ["../Maps1_T/x"], "val": [], "test": []}')),
    Row("cli-predict-into-expert-folder", 12, CLI, "predict --out Maps_predicted/../Maps3_T",
        ("Maps3_T", "expert's folder"), predict_into_expert_folder),
    Row("cli-split-not-json", 2, CLI, "the split file is not JSON", ("split.json", "cannot read split file"),
        split_file("[1, 2")),
    Row("cli-corrected-mask-corrupt", 2, CLI, "--corrected with a mask that is no PNG",
        ("fixed.png", "cannot read image"), corrupt_corrected_mask),
    # CLI — options and run folders (issues 2, 4, 6)
    Row("cli-config-unparsable", 2, CLI, "the config file is not YAML", ("cfg.yaml", "not a valid config file"),
        config("train: [unclosed\n")),
    Row("cli-config-unknown-option", 2, CLI, "the config file has a misspelt option", ("learning_rat", "unknown"),
        config("train:\n  learning_rat: 0.1\n")),
    Row("cli-config-missing", 2, CLI, "--config names no file", ("nope.yaml", "cannot read config"),
        lambda ctx: ["train", "--config", str(ctx.tmp / "nope.yaml")]),
    Row("cli-iters-0", 2, CLI, "--iters 0", ("train.iters must be at least 1",), train_on(args=("--iters", "0"))),
    Row("cli-confusion-and-reweight", 10, CLI, "--confusion --reweight", ("re-weighting", "confusion", "not both"),
        train_on(args=("--confusion", "--reweight"))),
    Row("cli-confusion-trace-negative", 10, CLI, "--confusion --confusion-trace -1",
        ("loss.confusion_trace must be ≥ 0",), train_on(args=("--confusion", "--confusion-trace", "-1"))),
    Row("cli-unknown-model", 2, CLI, "--model resnet9000", ("resnet9000", "choose one of: hrnet18"),
        train_on(args=("--model", "resnet9000"))),
    Row("cli-unknown-device", 2, CLI, "--device tpu", ("tpu", "auto, cpu or cuda"), train_on(args=("--device", "tpu"))),
    Row("cli-cuda-without-cuda", 4, CLI, "--device cuda on a machine without CUDA", ("cuda", "no CUDA device"),
        without_cuda(train_on(args=("--device", "cuda")))),
    Row("cli-pretrained-offline", 2, CLI, "--pretrained with no model hub reachable", ("pretrained", "could not be"),
        train_on(args=("--pretrained",))),
    Row("cli-out-holds-a-run", 6, CLI, "--out is a finished run (its checkpoints would be overwritten)",
        ("/run: ", "already holds a run"), earlier_run("train into it again")),
    Row("cli-out-is-a-file", 6, CLI, "--out is a file", ("/run: ", "not a folder"),
        with_file("run", "x", train_on())),
    Row("cli-resume-without-last", 2, CLI, "--resume a folder without last.pt", ("/empty run: ", "no last.pt"),
        lambda ctx: ["train", "--resume", str(ckpt_empty_run_folder(ctx))]),
    Row("cli-full-disk-at-checkpoint", 6, CLI, "the disk fills up as the first checkpoint is written",
        ("run/", "cannot write the checkpoint (No space left on device)", "training stopped at iteration 1"),
        full_disk_at_first_checkpoint, run_started=True),
    Row("cli-full-disk-at-next-checkpoint", 19, CLI, "a resumed run as the disk fills: its checkpoints byte-identical",
        ("run/", "cannot write the checkpoint (No space left on device)", "is kept", "last.pt holds iteration 1"),
        full_disk_at_next_checkpoint, run_started=True),
    Row("cli-predict-full-disk", 19, CLI, "predict --image as the disk fills: no file, no folder left",
        ("predicted/core_", "No space left on device", "nothing was written"), predict_on_full_disk),
    Row("cli-nan-loss", 2, CLI, "a resumed run diverges (lr 1e30): exit 3, last.pt kept byte-identical",
        ("last.pt", "last good checkpoint"), earlier_run("resume diverging"), code=3, run_started=True),
    Row("cli-synth-into-full-folder", 2, CLI, "synth --out a folder holding files", ("/full: ", "not empty"),
        synth_into_full_folder),
    # CLI — checkpoints (issues 2, 6)
    Row("cli-ckpt-other-architecture", 2, CLI, "predict with PSPNet weights said to be a U-Net",
        ("other architecture.pt", "do not fit the unet"), predict_cli(ckpt_other_architecture)),
    Row("cli-ckpt-damaged-confusion", 10, CLI, "predict with a confusion head of the wrong shape",
        ("bad confusion.pt", "confusion network weights do not fit"), predict_cli(ckpt_damaged_confusion)),
    Row("cli-ckpt-class-count", 2, CLI, "predict with a config of 6 classes, weights of 4",
        ("six.pt", "6 classes"), predict_cli(ckpt_six_classes)),
    Row("cli-init-other-architecture", 2, CLI, "train unet --init a PSPNet checkpoint", ("best.pt", "pspnet", "unet"),
        init_from(tiny_best, model="unet")),
    Row("cli-init-class-count", 2, CLI, "train --init a checkpoint of 6 classes", ("six.pt", "with 6 classes"),
        init_from(ckpt_six_classes)),
    Row("cli-ckpt-truncated", 2, CLI, "predict with half a checkpoint", ("cut.pt", "corrupt or truncated"),
        predict_cli(ckpt_truncated)),
    Row("cli-ckpt-garbage", 6, CLI, "predict with 300 bytes of 'x'", ("junk.pt", "corrupt or truncated"),
        predict_cli(ckpt_garbage)),
    Row("cli-ckpt-pickle-payload", 6, CLI, "predict with a pickle that would run os.system", ("evil.pt", "refused"),
        predict_cli(ckpt_pickle_payload)),
    Row("cli-ckpt-foreign", 6, CLI, "predict with a plain torch state dict", ("foreign.pt", "not a napari-gleason"),
        predict_cli(ckpt_foreign)),
    Row("cli-ckpt-newer", 6, CLI, "predict with a checkpoint of format version 99", ("newer.pt", "newer"),
        predict_cli(ckpt_newer_format)),
    Row("cli-ckpt-missing", 2, CLI, "predict with a checkpoint that does not exist", ("missing.pt", "no such"),
        predict_cli(ckpt_missing)),
    Row("cli-ckpt-empty-run-folder", 2, CLI, "predict with a run folder without best.pt/last.pt",
        ("/empty run: ", "no best.pt or last.pt"), predict_cli(ckpt_empty_run_folder)),
    Row("cli-predict-image-corrupt", 2, CLI, "predict an image that is no PNG (no empty output folder either)",
        ("core.png", "not an image Pillow can read"), predict_cli(image=lambda p: p.write_bytes(b"garbage"))),
    Row("cli-predict-output-exists", 2, CLI, "predict where an earlier class map is", (MASK.replace(CORE, "core"),
        "refusing to overwrite"), predict_cli(earlier_output=True)),
    # CLI — export to GeoJSON / OME-TIFF
    Row("cli-export-unknown-kind", 18, CLI, "export a text file (neither a mask PNG nor a .npy map)",
        ("notes.txt", "unknown file kind"), export_cli("unknown kind")),
    Row("cli-export-into-expert-folder", 18, CLI, "export --data --out Maps_vote/../Maps3_T",
        ("Maps3_T", "expert's folder"), export_cli("expert folder")),
    Row("cli-export-read-only", 18, CLI, "export a map into a read-only folder",
        ("core_roughness.ome.tif", "Read-only file system"), export_cli("read-only")),
    Row("cli-export-under-a-file", 18, CLI, "export into a folder below a file", ("notes.txt", "cannot create"),
        export_cli("under a file")),
    # plugin functions, no viewer (issues 3, 4)
    Row("plugin-settings-no-data", 4, PLUGIN, "the train form without data", ("choose the training data",),
        settings(data="")),
    Row("plugin-settings-unknown-model", 4, PLUGIN, "a model the form does not offer",
        ("'vgg'", "hrnet18, hrnet48, unet, deeplabv3plus, pspnet"), settings(model="vgg")),
    Row("plugin-settings-iters-0", 4, PLUGIN, "0 iterations", ("train.iters must be at least 1",), settings(iters=0)),
    Row("plugin-export-into-expert-subfolder", 3, PLUGIN, "export into Maps2_T/sub/",
        ("/Maps2_T/sub: ", "expert's folder"),
        export_into("Maps2_T/sub")),
    Row("plugin-export-core-name-leads-out", 12, PLUGIN, "export a core named '../Maps1_T/slide009_core001'",
        ("'../Maps1_T/slide009_core001'", "not a plain name"), export_core_named("../Maps1_T/slide009_core001")),
    # napari reader: viewer.open(path) (issue 3; damaged stores: issue 6)
    Row("reader-mask-size", 3, READER, "open a core whose expert 1 mask is 10×10, its image 40×48",
        (MASK, "expert 1", "differs"), opens(resize_mask), opens_with=(CORE, "expert:3", "expert:4")),
    Row("reader-mask-values", 3, READER, "open a core whose expert 1 mask holds 7", (MASK, "expert 1", "[7]"),
        opens(mask_value_7), opens_with=(CORE, "expert:3", "expert:4")),
    Row("reader-every-mask-broken", 19, READER, "open a core whose three experts' masks are all 10×10",
        (MASK, "differs"), opens(resize_every_mask)),
    Row("reader-image-corrupt", 3, READER, "open a core image holding no JPEG", (f"{CORE}.jpg", "not an image"),
        opens(corrupt_image)),
    Row("reader-core-without-masks", 3, READER, "open the core nobody annotated", ("slide005_core001.jpg",
        "no expert mask"), opens(path=lambda root: image_of(root, "slide005_core001"))),
    Row("reader-dataset-without-cores", 3, READER, "open a dataset folder whose masks match no image",
        ("/data set é: ", "no core"), opens(rename_all_masks, path=lambda root: root)),
    Row("reader-generic-classes-json", 3, READER, "open a generic dataset whose classes.json is no JSON",
        ("classes.json", "cannot read class"), opens(broken_classes_json, layout=generic, path=lambda root: root)),
    Row("reader-store-newer", 3, READER, "open a review store of format version 99",
        ("/review.zarr: ", "newer", "update napari-gleason"), review_store(newer_format)),
    Row("reader-store-empty", 3, READER, "open a review store holding no core", ("/review.zarr: ", "holds no core"),
        review_store(lambda store: None, cores=())),
    Row("reader-store-zarr-json", 6, READER, "open a review store whose zarr.json is garbage",
        ("/review.zarr: ", "damaged"), review_store(garbage_json("."))),
    Row("reader-store-core-json", 6, READER, "open a review store whose core's zarr.json is garbage",
        ("/review.zarr: ", "damaged"), review_store(garbage_json("c1"))),
    Row("reader-store-labels-json", 6, READER, "open a store of two cores, c2's labels' zarr.json garbage",
        ("/review.zarr: ", "damaged"), review_store(garbage_json("c2/labels"), cores=("c1", "c2"))),
    Row("reader-store-core-name-leads-out", 12, READER, "open a shared store whose core is named '../Maps1_T/c3'",
        ("/c1/zarr.json: ", "'../Maps1_T/c3'", "not a plain name"), review_store(core_named("c1", "../Maps1_T/c3"))),
    Row("reader-store-level-missing", 6, READER, "open a review store missing its image",
        ("/review.zarr: ", "core 'c1'", "(array 0)", "damaged"), review_store(remove("c1/0"))),
    Row("reader-store-chunks", 6, READER, "open a review store whose image chunks are garbage",
        ("/review.zarr: ", "damaged"), review_store(garbage_chunks("c1/0"))),
    # widgets: Review ▸ Export (issues 3, 6)
    Row("export-into-expert-folder", 3, WIDGET, "export the vote into Maps1_T/ (where c1's mask is: no question)",
        ("/Maps1_T: ", "expert's folder"), export_file(lambda root: root / "Maps1_T")),
    Row("export-read-only", 6, WIDGET, "export into a read-only folder",
        ("c1_classimg_nonconvex.png", "Read-only file system"), export_file(patch=READ_ONLY)),
    Row("export-full-disk", 6, WIDGET, "export as the disk fills up",
        ("c1_classimg_nonconvex.png", "No space left on device"), export_file(patch=DISK_FULL)),
    Row("export-full-disk-at-write", 19, WIDGET, "export as the disk fills up under Pillow's own writes",
        ("c1_classimg_nonconvex.png", "No space left on device"), export_file(patch=DISK_FULL_AT_WRITE)),
    Row("export-into-a-file", 6, WIDGET, "export into a path that is a file", ("notes.txt", "cannot create"),
        export_file(a_file)),
    Row("export-under-a-file", 6, WIDGET, "export into a folder below a file", ("notes.txt", "cannot create"),
        export_file(under_a_file)),
    Row("export-value-no-class", 3, WIDGET, "export a 'corrected' layer painted with label 2",
        ("'corrected'", "[2]"), export_file(paint=2)),
    Row("store-cache-full-disk", 6, WIDGET, "cache the core in a new store as the disk fills up",
        ("/review.zarr: ", "No space left on device"), to_store("full disk")),
    Row("store-save-newer", 3, WIDGET, "save a layer to a store of format version 99", ("/review.zarr: ", "newer"),
        to_store("newer format")),
    Row("store-save-damaged", 6, WIDGET, "save a layer to a store whose zarr.json is garbage",
        ("/review.zarr: ", "not a napari-gleason review store"), to_store("damaged")),
    # widgets: Predict (issues 4, 6)
    Row("predict-other-architecture", 4, WIDGET, "PSPNet weights said to be a U-Net",
        ("other architecture.pt", "do not fit"), predict_widget(ckpt_other_architecture)),
    Row("predict-damaged-confusion", 10, WIDGET, "a confusion head of the wrong shape",
        ("bad confusion.pt", "confusion network weights do not fit"), predict_widget(ckpt_damaged_confusion)),
    Row("predict-other-classes", 4, WIDGET, "a sound 3-class model on a Gleason core",
        ("three classes.pt", "predicts 3 classes"), predict_widget(ckpt_three_classes)),
    Row("predict-truncated", 4, WIDGET, "half a checkpoint", ("cut.pt", "corrupt or truncated"),
        predict_widget(ckpt_truncated)),
    Row("predict-pickle-payload", 6, WIDGET, "a pickle that would run os.system", ("evil.pt", "refused"),
        predict_widget(ckpt_pickle_payload)),
    Row("predict-cuda-without-cuda", 4, WIDGET, "cuda typed in where none exists", ("no CUDA device", "use 'cpu'"),
        predict_widget(device="cuda")),
    Row("predict-no-core", 4, WIDGET, "Predict with no core open", ("open a core first",),
        predict_widget(core=False)),
    Row("predict-no-checkpoint", 4, WIDGET, "Predict with no checkpoint chosen", ("choose a checkpoint first",),
        predict_widget(None)),
    # widgets: Train (issue 4; issue 6 for the output folder)
    Row("train-masks-do-not-match", 4, WIDGET, "a training core's mask is 10×10, its image 40×48",
        (MASK, "differs", "Fix or remove that file"), train_start(broken(resize_mask))),
    Row("train-init-other-architecture", 4, WIDGET, "train unet from a PSPNet checkpoint",
        ("best.pt", "pspnet", "unet"), train_start(init=tiny_best, model="unet")),
    Row("train-init-missing", 4, WIDGET, "start from a checkpoint that does not exist",
        ("missing.pt", "start checkpoint not found"), train_start(init=ckpt_missing)),
    Row("train-cuda-without-cuda", 4, WIDGET, "cuda typed in where none exists", ("no CUDA device",),
        train_start(device="cuda")),
    Row("train-data-missing", 4, WIDGET, "data folder does not exist", ("/missing: ", "does not exist"),
        train_start(beside("missing"))),
    Row("train-out-holds-a-run", 4, WIDGET, "output folder holds last.pt", ("/old run: ", "already holds a run"),
        train_start(out=beside("old run", "run"))),
    Row("train-out-is-a-file", 6, WIDGET, "output is a file", ("/run: ", "not a folder"),
        train_start(out=beside("run", "file"))),
    Row("train-stop-before-start", 4, WIDGET, "Stop before Start: nothing, not even a message", (),
        stop_before_start),
    Row("finetune-value-no-class", 4, WIDGET, "fine-tune on a 'corrected' layer painted with label 2",
        ("'corrected'", "[2]", "repaint"), finetune(paint=2)),
    Row("finetune-no-layer", 4, WIDGET, "fine-tune with no editable labels layer",
        ("make an editable labels layer first",), finetune(layer=False)),
    Row("finetune-no-checkpoint", 4, WIDGET, "fine-tune with no model chosen", ("choose the model to fine-tune",),
        finetune(checkpoint=False)),
    # widgets: Dataset browser (issue 3)
    Row("browser-broken-core", 3, WIDGET, "load a core whose expert bob's mask is 3×3 (it opens with ann)",
        ("b.png", "expert bob", "differs"), browser("load b"), opens_with=("b", "expert:ann")),
    Row("browser-not-a-dataset", 3, WIDGET, "open a folder holding neither layout", ("/plain: ", "not a dataset folder"),
        browser("open plain")),
    Row("browser-damaged-store", 6, WIDGET, "open a store of two cores, c2's labels' zarr.json garbage",
        ("review.zarr", "damaged"), browser("open store")),
    # QuPath GeoJSON experts: a generic dataset whose expert qupath is a GeoJSON export
    Row("cli-geojson-invalid-json", 19, CLI, "a GeoJSON expert's file cut off mid-JSON", ("a.geojson", "invalid JSON"),
        train_on(broken_geojson("invalid JSON"), layout=qupath_generic)),
    Row("cli-geojson-unknown-class", 19, CLI, "a GeoJSON annotation classified 'Gleason 7', not in the names",
        ("a.geojson", "'Gleason 7'", "known: 'Benign', 'Gleason 3'"),
        train_on(broken_geojson("unknown class"), layout=qupath_generic)),
    Row("cli-geojson-outside-image", 19, CLI, "a GeoJSON annotation reaching x=90 on a 32 px wide core",
        ("a.geojson", "outside the image"), train_on(broken_geojson("outside the image"), layout=qupath_generic)),
    Row("cli-geojson-self-intersecting", 19, CLI, "a GeoJSON polygon crossing itself (a bow tie)",
        ("a.geojson", "crosses itself at x=2, y=2"),
        train_on(broken_geojson("self-intersecting"), layout=qupath_generic)),
    Row("cli-check-geojson-unknown-class", 19, CLI, "check: both cores' GeoJSON name 'Gleason 7'",
        ("/qupath data: ", "2 problems"),
        lambda ctx: ["check", "--data", str(opens(broken_geojson("unknown class"), layout=qupath_generic,
                                                  path=lambda root: root)(ctx))]),
    Row("reader-geojson-invalid-json", 19, READER, "open a dataset whose GeoJSON experts are cut off mid-JSON "
        "(core a opens with expert ann)", ("a.geojson", "expert qupath", "invalid JSON"),
        opens(broken_geojson("invalid JSON"), layout=qupath_generic, path=lambda r: r), opens_with=QUPATH_OPENS),
    Row("reader-geojson-unknown-class", 19, READER, "open a dataset whose GeoJSON experts name 'Gleason 7'",
        ("a.geojson", "'Gleason 7'", "known: "),
        opens(broken_geojson("unknown class"), layout=qupath_generic, path=lambda r: r), opens_with=QUPATH_OPENS),
    Row("reader-geojson-outside-image", 19, READER, "open a dataset whose GeoJSON annotations reach x=90",
        ("a.geojson", "outside the image"),
        opens(broken_geojson("outside the image"), layout=qupath_generic, path=lambda r: r), opens_with=QUPATH_OPENS),
    Row("reader-geojson-self-intersecting", 19, READER, "open a dataset whose GeoJSON polygons cross themselves",
        ("a.geojson", "crosses itself at x=2, y=2"),
        opens(broken_geojson("self-intersecting"), layout=qupath_generic, path=lambda r: r), opens_with=QUPATH_OPENS),
    # damaged review stores: a chunk deleted (once read as zeros) or truncated (once a bare zstd error)
    Row("reader-store-chunk-deleted", 19, READER, "open a review store missing a chunk of expert 1's labels",
        ("/review.zarr: ", "core 'c1'", "labels/expert_1/0", "missing"),
        review_store(damage_chunk("c1/labels/expert_1/0", "deleted"))),
    Row("reader-store-chunk-truncated", 19, READER, "open a review store whose image chunk is cut in half",
        ("/review.zarr: ", "core 'c1'", "(array 0)", "checksum"), review_store(damage_chunk("c1/0", "truncated"))),
    Row("cli-check-store-chunk-deleted", 19, CLI, "check a review store missing a chunk of expert 1's labels",
        ("/review.zarr: ", "core 'c1'", "labels/expert_1/0", "missing"),
        lambda ctx: ["check", "--data", str(review_store(damage_chunk("c1/labels/expert_1/0", "deleted"))(ctx))]),
    Row("cli-check-store-chunk-truncated", 19, CLI, "check --full a review store whose image chunk is cut in half",
        ("/review.zarr: ", "core 'c1'", "(array 0)", "checksum"),
        lambda ctx: ["check", "--data", str(review_store(damage_chunk("c1/0", "truncated"))(ctx)), "--full"]),
    Row("browser-store-chunk-deleted", 19, WIDGET, "browse a store, load c2 missing a chunk of expert 1's labels",
        ("/review.zarr: ", "core 'c2'", "labels/expert_1/0", "missing"), browser_damaged_core("deleted")),
    Row("browser-store-chunk-truncated", 19, WIDGET, "browse a store, load c2 whose expert 1 chunk is cut in half",
        ("/review.zarr: ", "core 'c2'", "labels/expert_1/0", "checksum"), browser_damaged_core("truncated")),
]

#: Unusual but valid (issue 2): they must train, and leave the experts' files alone.
WORKS = ["rgba image", "grey image", "core with one expert", "spaces and non-ASCII"]
