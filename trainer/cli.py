"""``python -m trainer {synth,split,check,train,predict,evaluate,summarize,ablation,export}``.

Exit code 0 on success; 2 with one clear line on stderr for bad input (a file that cannot be read,
an option out of range, a checkpoint of another architecture); 3 when training hit a NaN loss.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from .cli_predict import cmd_evaluate, cmd_predict, cmd_summarize, default_predict_out, run_name  # noqa: F401
from .errors import CacheWarning, InputError, NonFiniteLossError


def _add_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML/JSON file with sections data, model, loss, train; flags override it")
    p.add_argument("--data", help="dataset folder (Gleason 2019 layout or images/ + masks/<annotator>/)")
    p.add_argument("--split-file", help="JSON split {train, val, test}; default: the paper's split where it "
                                        "applies, else a stratified split (python -m trainer split explains)")
    p.add_argument("--train-experts", help="comma-separated expert names (default 1,3,4 for Gleason 2019)")
    p.add_argument("--val-fraction", type=float, help="share of the training cores kept for validation (0.2)")
    p.add_argument("--test-fraction", type=float, help="held out for testing when the paper's rule does not apply (0.2)")
    p.add_argument("--no-check", action="store_true", help="skip the quick check of every core before training")
    p.add_argument("--model", help="hrnet18, hrnet48, unet, deeplabv3plus or pspnet")
    p.add_argument("--encoder", help="SMP encoder for unet/deeplabv3plus/pspnet (e.g. resnet18)")
    p.add_argument("--pretrained", nargs="?", const=True, default=None,
                   help="ImageNet weights from the model hub, or a local backbone weights file")
    p.add_argument("--loss", choices=["focal", "gafl"], help="focal loss, or GAFL (eq. 5-6; default gafl)")
    p.add_argument("--reweight", action=argparse.BooleanOptionalAction, default=None,
                   help="label re-weighting with the weighting CNN (eq. 2-4)")
    p.add_argument("--confusion", action=argparse.BooleanOptionalAction, default=None,
                   help="beyond the paper: per-pixel annotator confusion matrices (Zhang, Tanno et al. 2020) "
                        "in place of the re-weighting")
    p.add_argument("--confusion-form", choices=["heads", "trunk"],
                   help="heads = per-expert heads on the segmentation network's decoder features (Zhang et "
                        "al., default); trunk = a separate ResNet-18 (--weight-stride, --weight-input-scale)")
    p.add_argument("--confusion-objective", choices=["zhang", "vote"],
                   help="zhang = noisy-label likelihood + trace (default); vote = λ1·vote + λ2·(noisy + trace), "
                        "this project's earlier form")
    p.add_argument("--confusion-trace", type=float,
                   help="weight α of the trace term (default 0.1 with zhang, Zhang et al.'s code; 0.01 with vote)")
    p.add_argument("--confusion-loss", choices=["nll", "run"],
                   help="noisy-label term: nll = Zhang et al.'s plain likelihood (default), run = the run's "
                        "focal/GAF loss of it")
    p.add_argument("--vote-warmup", type=float, metavar="SHARE",
                   help="zhang objective: a vote term whose weight falls from 1 to 0 over this share of the "
                        "run (default 0.2; 0: none, as Zhang et al.)")
    p.add_argument("--gamma", type=float, help="focal loss γ (authors' configs: 0.1)")
    p.add_argument("--lambda-step", type=int,
                   help="n of eq. (7-8) grows by one every N iterations (default: 10 %% of --iters, the paper's "
                        "1k of 10k)")
    p.add_argument("--lambda-form", choices=["paper", "authors"],
                   help="λ schedule: paper = tanh(n) (eq. 7-8, default), authors = tanh(n/2) as their code")
    p.add_argument("--gauss-kernel", choices=["authors", "sampled"],
                   help="eq. (5) Gaussian: authors = gkern(5, nsig=3), σ ≈ 0.87 px (default); sampled = σ 3 px")
    p.add_argument("--gauss-border", choices=["zero", "reflect"], help="eq. (5) borders: zero (authors') or reflect")
    p.add_argument("--reduction", choices=["authors", "pixel"],
                   help="loss reduction: authors = mean over classes × pixels (default); pixel = C× that")
    p.add_argument("--weight-stride", type=int, choices=[4, 8, 16, 32],
                   help="weighting/confusion CNN output stride: 4 = the authors' ResNet-18 (default)")
    p.add_argument("--weight-head-kernel", type=int, choices=[1, 3], help="its head conv: 3 (authors') or 1")
    p.add_argument("--weight-pretrained", nargs="?", const=True, default=None, metavar="PATH",
                   help="ImageNet ResNet-18 for the weighting/confusion CNN: from the hub, or a local file "
                        "(default: follows --pretrained when that takes the hub's weights)")
    p.add_argument("--weight-input-scale", type=float, help="weighting CNN input scale (1.0; 0.5 is faster)")
    p.add_argument("--iters", type=int, help="training iterations (paper: 10000)")
    p.add_argument("--size", type=int, help="model input size (paper: 1024)")
    p.add_argument("--batch-size", type=int, help="images per iteration and process (paper: 2)")
    p.add_argument("--lr", type=float, help="initial SGD learning rate, poly decay (paper: 0.01)")
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--no-amp", action="store_true", help="disable mixed precision on CUDA")
    p.add_argument("--seed", type=int, help="seed of initialisation, batches and augmentation (default 0)")
    p.add_argument("--workers", type=int, help="data loader worker processes")
    p.add_argument("--augment-device", choices=["auto", "worker", "device"],
                   help="where augmentation, normalisation and the vote run: the data workers (numpy) or the "
                        "training device (workers send uint8 cores); auto = device on CUDA (default)")
    p.add_argument("--cache-dir", help="keep resized cores here, so later workers and runs skip decoding")
    p.add_argument("--compile", nargs="?", const="default", metavar="MODE",
                   choices=["off", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"],
                   help="torch.compile the networks (MODE: default, reduce-overhead, max-autotune, "
                        "max-autotune-no-cudagraphs; off disables it, e.g. on --resume)")
    p.add_argument("--compile-backend", help="torch.compile backend: inductor (default), aot_eager, eager")
    p.add_argument("--out", help="run folder (config, events.jsonl, last.pt, best.pt)")
    p.add_argument("--checkpoint-every", type=int,
                   help="write last.pt every N iterations (default: a tenth of --iters, at most 1000)")
    p.add_argument("--val-every", type=int,
                   help="validate (and keep best.pt) every N iterations (default: a tenth of --iters, at most 1000)")
    p.add_argument("--resume", metavar="RUN", help="continue RUN from its last.pt (with --iters: up to N)")
    p.add_argument("--init", metavar="CKPT", help="fine-tune: start from the weights of CKPT")
    p.add_argument("--corrected", nargs=2, action="append", metavar=("IMAGE", "MASK"),
                   help="add a core with corrected labels (mask PNG in the dataset's values); repeatable")


def _overrides(a: argparse.Namespace) -> dict:
    experts = a.train_experts.split(",") if a.train_experts else None
    corrected = ([{"name": Path(img).stem, "image": img, "mask": mask} for img, mask in a.corrected]
                 if a.corrected else None)
    return {
        "data": {"path": a.data, "split_file": a.split_file, "train_experts": experts, "corrected": corrected,
                 "val_fraction": a.val_fraction, "test_fraction": a.test_fraction,
                 "check": False if a.no_check else None, "size": a.size, "num_workers": a.workers,
                 "augment_device": a.augment_device, "cache_dir": a.cache_dir},
        "model": {"name": a.model, "encoder": a.encoder, "pretrained": a.pretrained},
        "loss": {"loss": a.loss, "reweight": a.reweight, "gamma": a.gamma, "lambda_step": a.lambda_step,
                 "weight_input_scale": a.weight_input_scale, "confusion": a.confusion,
                 "confusion_trace": a.confusion_trace, "lambda_form": a.lambda_form,
                 "confusion_form": a.confusion_form, "confusion_objective": a.confusion_objective,
                 "confusion_nll": None if a.confusion_loss is None else a.confusion_loss == "nll",
                 "vote_warmup": a.vote_warmup,
                 "gauss_kernel": a.gauss_kernel, "gauss_border": a.gauss_border, "reduction": a.reduction,
                 "weight_stride": a.weight_stride, "weight_head_kernel": a.weight_head_kernel,
                 "weight_pretrained": a.weight_pretrained},
        "train": {"iters": a.iters, "batch_size": a.batch_size, "lr": a.lr, "device": a.device,
                  "seed": a.seed, "out": a.out, "checkpoint_every": a.checkpoint_every,
                  "val_every": a.val_every, "init": a.init, "amp": False if a.no_amp else None,
                  "compile": False if a.compile == "off" else a.compile, "compile_backend": a.compile_backend},
    }


def cmd_train(a: argparse.Namespace) -> int:
    from .config import build_run_config, load_config_file

    over = _overrides(a)
    if a.resume:
        run = Path(a.resume)
        if not (run / "last.pt").is_file():
            raise InputError("no last.pt to resume from", run)
        base = load_config_file(run / "config.json")
        over["train"]["out"] = str(run)
    else:
        base = load_config_file(a.config) if a.config else {}
    # the output folder's rule (a file, or a folder holding a run) is the engine's, checked here early
    cfg = build_run_config(base, over, resume=bool(a.resume))
    if a.resume:
        cfg.train.init = None  # resuming loads last.pt, never start weights
    return _run_training(cfg, resume=bool(a.resume))


def _run_training(cfg, resume: bool) -> int:
    from tqdm import tqdm

    from . import events as ev
    from .engine import train

    import os

    import signal
    import threading

    # SIGINT/SIGTERM set the engine's stop flag (the GUI uses the same one): the engine drops the
    # iteration in progress within a module's forward or a gradient, and writes last.pt.
    stop = threading.Event()

    def request_stop(signum, _frame):
        if stop.is_set():  # a second Ctrl-C means now
            raise KeyboardInterrupt
        stop.set()
        print(f"stopping ({signal.Signals(signum).name}): within seconds, keeping the last complete iteration; "
              "press Ctrl-C again to abort",
              file=sys.stderr, flush=True)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun only rank 0 reports
        for _ in train(cfg, stop=stop, resume=resume):
            pass
        return 0
    bar = None
    quiet = not sys.stderr.isatty()
    try:
        for event in train(cfg, stop=stop, resume=resume):
            if isinstance(event, ev.RunStarted):
                print(f"run {event.run_dir}: device {event.device}, world {event.world_size}, "
                      f"experts {','.join(event.experts)}, split {event.counts}", flush=True)
                bar = tqdm(total=event.total_iterations, initial=event.start_iteration, disable=quiet,
                           desc="train", dynamic_ncols=True)
            elif isinstance(event, ev.IterationDone):
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix({k: f"{v:.4f}" for k, v in event.losses.items() if "/" not in k})
                if quiet and (event.iteration % 50 == 0 or event.iteration == event.total_iterations):
                    terms = " ".join(f"{k}={v:.4f}" for k, v in event.losses.items())
                    print(f"iter {event.iteration}/{event.total_iterations} {terms} "
                          f"λ1={event.lambda1:.3f} λ2={event.lambda2:.3f} lr={event.lr:.5f} "
                          f"{event.seconds:.2f}s/it", flush=True)
            elif isinstance(event, ev.ValidationDone):
                dice = " ".join(f"{k}={v:.3f}" for k, v in event.dice.items())
                (bar.write if bar else print)(f"val @ {event.iteration}: mean Dice {event.mean_dice:.4f} ({dice})"
                                              + (" best" if event.is_best else ""))
            elif isinstance(event, ev.Message):
                (bar.write if bar else print)(event.text)
            elif isinstance(event, ev.RunFinished):
                if bar is not None:
                    bar.close()
                how = "stopped" if event.stopped else "finished"
                print(f"{how} at iteration {event.iteration}: last {event.last_path}, best {event.best_path}")
    finally:
        if bar is not None:
            bar.close()
    return 0


def cmd_synth(a: argparse.Namespace) -> int:
    from .synthetic import write_dataset

    info = write_dataset(a.out, cores=a.cores, size=a.size, seed=a.seed)
    n_all = sum(1 for c in info.get("cores", []) if len(c.get("experts", [])) == 6) if isinstance(info, dict) else 0
    print(f"wrote {a.cores} synthetic cores ({a.size}²) to {a.out}; {n_all} annotated by all six experts")
    return 0


def cmd_split(a: argparse.Namespace) -> int:
    from .data import open_dataset
    from .data.splits import default_split, save_split

    ds = open_dataset(a.data)
    experts = tuple(a.train_experts.split(",")) if a.train_experts else None
    split = default_split(ds, experts, val_fraction=a.val_fraction, test_fraction=a.test_fraction, seed=a.seed)
    print(split.reason)
    print(split.summary())
    for note in ds.notes:
        print(f"note: {note}")
    if a.out:
        save_split(split, a.out)
        print(f"wrote {a.out}")
    return 0


def cmd_check(a: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .data import open_dataset
    from .data.check import check_dataset
    from .review_store import is_review_store
    from .review_store.check import check_store

    store = is_review_store(a.data) or (Path(a.data) / "zarr.json").is_file()  # a damaged store: said by the store
    ds = None if store else open_dataset(a.data)
    for note in ds.notes if ds is not None else ():
        print(f"note: {note}")
    with tqdm(total=len(ds) if ds is not None else None, desc="check", unit="core", disable=not sys.stderr.isatty(),
              dynamic_ncols=True) as bar:
        step = lambda done, total: bar.update(1)  # noqa: E731
        report = check_store(a.data, a.full, step) if store else check_dataset(ds, full=a.full, progress=step)
    if report.problems:
        print(report.table())
    print(report.summary())
    if report.problems:
        n = len(report.problems)
        first = f"; first: {report.problems[0].problem}" if store else ""
        print(f"error: {a.data}: {n} problem{'s' * (n != 1)} in the {'review store' if store else 'data'} "
              f"(listed above{first})", file=sys.stderr)
        return 2
    return 0


def cmd_ablation(a: argparse.Namespace) -> int:
    from .ablation.cli import run_command

    return run_command(a)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="python -m trainer",
        description="napari-gleason's trainer: synthetic data, checks, training, prediction, evaluation and "
                    "benchmarks of the paper's model (Pathological Image Segmentation with Noisy Labels).",
        epilog="Exit codes: 0 success; 2 bad input (one line on stderr); 3 the loss became NaN.")
    parser.add_argument("--version", action="version", version=f"napari-gleason trainer {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="write synthetic multi-expert cores with known truth")
    p.add_argument("--out", required=True, help="new folder for the dataset (must not exist or be empty)")
    p.add_argument("--cores", type=int, default=8, help="number of cores (default 8)")
    p.add_argument("--size", type=int, default=512, help="core side in pixels (default 512)")
    p.add_argument("--seed", type=int, default=0, help="random seed: same seed, same bytes (default 0)")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("split", help="print (and save) the default train/val/test split, and which rule chose it")
    p.add_argument("--data", required=True, help="dataset folder")
    p.add_argument("--train-experts", help="comma-separated expert names (default: 1,3,4 for Gleason 2019, else all)")
    p.add_argument("--val-fraction", type=float, default=0.2, help="share of the training cores for validation (default 0.2)")
    p.add_argument("--test-fraction", type=float, default=0.2,
                   help="held out for testing when the paper's rule does not apply")
    p.add_argument("--seed", type=int, default=0, help="seed of the stratified split (default 0)")
    p.add_argument("--out", help="write the split as JSON")
    p.set_defaults(func=cmd_split)

    p = sub.add_parser("check", help="check every core's image and masks (or a review store's arrays); all problems "
                                     "in one table")
    p.add_argument("--data", required=True, help="dataset folder or review store (.zarr)")
    p.add_argument("--full", action="store_true", help="decode every image too (default: image headers only); "
                                                       "for a review store, read every chunk (default: list them)")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("train", help="train (or resume, or fine-tune) a model")
    _add_train_args(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "predict", help="predict images, or every core of a dataset's split, with a checkpoint",
        description="Predict the images given with --image into --out, or every core of a dataset (--data) "
                    "once: with the core's experts and their labels (a confusion model writes each expert's "
                    "error map given the label), in the dataset's file convention, skipping cores already "
                    "predicted. Under torchrun (torchrun --nproc_per_node N -m trainer predict --data ...) the "
                    "cores are shared out over the ranks, each predicted by exactly one.")
    p.add_argument("--checkpoint", required=True, help="checkpoint file (a run's last.pt or best.pt, a shipped model)")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--image", nargs="+", help="image files to predict (needs --out)")
    what.add_argument("--data", help="dataset folder (Gleason 2019 or generic layout): predict the cores of --split")
    p.add_argument("--split", choices=["train", "val", "test", "all"],
                   help="with --data: which cores (default: all); train/val/test as evaluate chooses them: "
                        "--split-file, else the split training uses by default, with the checkpoint's experts")
    p.add_argument("--split-file", help="with --data: JSON split {train, val, test} (default: the default rule)")
    p.add_argument("--out", help="output folder (required with --image; with --data default: <checkpoint's "
                                 "folder>/predictions/<dataset folder>-<checkpoint stem>, '-full' added with "
                                 "--mode full); never an expert's mask folder")
    p.add_argument("--store", metavar="STORE",
                   help="with --data: predict into this review store (created if absent; full resolution, "
                        "needs --mode full) instead of files; cores already predicted there are skipped")
    p.add_argument("--mode", choices=["paper", "full"], default="paper",
                   help="paper: the whole core at the model's input size (default); full: blended tiles at "
                        "full resolution, at --tiled's magnification (default 1)")
    p.add_argument("--size", type=int, help="paper setting's model input size (default: the training size)")
    p.add_argument("--device", default="auto",
                   help="auto, cpu, cuda or cuda:N (default: auto; under torchrun cuda is each rank's GPU)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing predictions (default: off; --image refuses an existing mask, --data "
                        "skips cores this checkpoint already predicted in this mode)")
    p.add_argument("--fp32", action="store_true",
                   help="compute in float32 only (default: bfloat16 autocast on a CPU with native bfloat16, "
                        "mixed precision on a GPU)")
    p.add_argument("--tiled", type=float, metavar="MAGNIFICATION",
                   help="full resolution: blended tiles at this fraction of the image's resolution "
                        "(default: the paper setting, the whole image at the model's input size)")
    p.add_argument("--json", help="with --data: write the summary (counts, each rank's cores) as JSON here "
                                  "(default: none)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("evaluate", help="Dice per class (Table 2) and κ on a split")
    p.add_argument("--checkpoint", required=True, help="checkpoint file")
    p.add_argument("--data", required=True, help="dataset folder")
    p.add_argument("--split", default="test", choices=["train", "val", "test", "all"],
                   help="which cores (default: test)")
    p.add_argument("--split-file", help="JSON split {train, val, test} (default: the split training uses by "
                                        "default, with the checkpoint's experts)")
    p.add_argument("--size", type=int, help="model input size (default: the training size)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--json", help="write the full result (per class, per core, per expert) as JSON here "
                                  "(default: none)")
    p.set_defaults(func=cmd_evaluate)

    from .grading import MIN_PATTERN_SHARE  # numpy only: cheap to import for the parser

    p = sub.add_parser(
        "summarize", help="grade every core (shares, Gleason score, grade group) per expert, vote, STAPLE, model",
        description="One CSV row per core and rater (each expert, the vote, STAPLE, and the model with "
                    "--checkpoint): each class's share of the tissue and each pattern's of the tumour, primary "
                    "and secondary pattern, Gleason score, ISUP grade group (0 = benign); then grade-group κ "
                    "between experts and Fleiss' κ. No model is loaded without --checkpoint.")
    p.add_argument("--data", required=True, help="dataset folder")
    p.add_argument("--checkpoint", help="also grade the model's prediction of every core (default: none)")
    p.add_argument("--out", help="write the table as CSV here (default: none)")
    p.add_argument("--rule", choices=["isup", "gleason2019"], default="isup",
                   help="isup: primary + highest, lower minor patterns from 5 %% of the tumour (default); "
                        "gleason2019: the two most extensive patterns (the challenge's scoring)")
    p.add_argument("--min-share", type=float, default=MIN_PATTERN_SHARE,
                   help="a pattern counts from this share of the core's labelled area, a noise floor "
                        f"(default: {MIN_PATTERN_SHARE})")
    p.add_argument("--staple", action=argparse.BooleanOptionalAction, default=True,
                   help="grade the STAPLE consensus too (default: on)")
    p.add_argument("--size", type=int, help="with --checkpoint: model input size (default: the training size)")
    p.add_argument("--device", default="auto", help="with --checkpoint: auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--fp32", action="store_true", help="with --checkpoint: compute in float32 only")
    p.set_defaults(func=cmd_summarize)

    p = sub.add_parser("ablation", aliases=["benchmark"],
                       help="Table 2's ablation on synthetic cores with known truth, or real experts (cpu-real)")
    p.add_argument("--preset", required=True, choices=["cpu-small", "cpu-noisy", "cpu-real", "paper"],
                   help="cpu-small, cpu-noisy (synthetic, 2 CPU cores), cpu-real (BU-BIL dataset 1), paper (one GPU)")
    p.add_argument("--out", required=True, help="ablation folder (an existing one is continued)")
    p.add_argument("--seeds", type=int, help="number of seeds (default: the preset's, 3)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.set_defaults(func=cmd_ablation)

    from .export import add_parser as add_export_parser  # the command lives in trainer/export.py

    add_export_parser(sub)
    return parser


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


def _one_line_warnings(default):
    """``warnings.showwarning`` that prints a :class:`CacheWarning` (a cache that cannot be written;
    the work goes on) as one ``warning:`` line, and any other warning as ``default`` does."""

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, CacheWarning):
            print(f"warning: {_one_line(message)}", file=sys.stderr if file is None else file, flush=True)
        else:
            default(message, category, filename, lineno, file, line)

    return show


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    shown, warnings.showwarning = warnings.showwarning, _one_line_warnings(warnings.showwarning)
    try:
        return args.func(args)
    except InputError as exc:
        report = getattr(exc, "report", None)  # data check (DataProblemsError): every problem, in a table
        if report is not None and len(report.problems) > 1:
            print(report.table())
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except NonFiniteLossError as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 3
    except OSError as exc:  # a read-only folder, a full disk: one line naming the file, not a traceback
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}cannot read or write it ({_one_line(exc) if not exc.strerror else exc.strerror})",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.showwarning = shown


if __name__ == "__main__":
    sys.exit(main())
