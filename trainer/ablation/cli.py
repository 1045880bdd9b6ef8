"""``python -m trainer ablation``: runs a preset and prints where the report is."""

from __future__ import annotations

import argparse
import time


def _log(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {text}", flush=True)


def run_command(a: argparse.Namespace) -> int:
    from .run import run_benchmark

    command = f"python -m trainer ablation --preset {a.preset} --out {a.out}"
    command += (f" --seeds {a.seeds}" if a.seeds else "") + (f" --device {a.device}" if a.device != "auto" else "")
    if a.preset == "cpu-real":  # real data with a gold standard: its own module (trainer.ablation.real)
        from .real import run_real_benchmark

        run_benchmark = run_real_benchmark  # noqa: F811 - same call, same report
    results = run_benchmark(a.preset, a.out, seeds=a.seeds, device=a.device, command=command, log=_log)
    _log(f"wrote {a.out}/results.json and {a.out}/table.md "
         f"({results['wall_seconds_this_invocation'] / 60:.1f} min)")
    return 0
