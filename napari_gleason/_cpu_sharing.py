"""How a long job shares the napari process with the GUI thread (measured on the 2-core CI machine).

Training runs in a child process (:mod:`._child_run`, which also leaves one core to the GUI on CPU
runs and lowers the child's priority); prediction runs in a worker thread of this process. Two
things stall the GUI while torch works in a thread of its process, neither of them the worker's
events or the plot:

- **Python's cyclic garbage collector.** A full (generation-2) collection holds the GIL while it
  walks every container object in the process; with napari, Qt, vispy, torch and timm loaded that
  took 200–400 ms, triggered by the engine's allocations (e.g. building a checkpoint's
  ``state_dict``). :func:`gc_frozen` moves everything that exists when the job starts into the
  permanent generation (``gc.freeze``), so later full collections only walk what the job itself
  created (1–6 ms); it is undone when the last job ends.
- **Oversubscribed cores.** torch's OpenMP workers spin-wait at each parallel region for a thread the
  scheduler has just given to the GUI (napari's progress spinner, the window's compositing, which is
  software OpenGL in a VM or under Xvfb). With the window shown, 2 torch threads on 2 cores made a
  PSPNet-r18 128² iteration take ~11 s and the GUI stall up to 170 ms; 1 thread: ~0.9 s and ~60 ms.
  A training child therefore gets one core fewer than the machine has on the CPU (``OMP_NUM_THREADS``).
"""

from __future__ import annotations

import gc
import threading
from contextlib import contextmanager

_lock = threading.Lock()
_frozen = 0


@contextmanager
def gc_frozen():
    """Exclude the objects that exist now from full garbage collections while the block runs."""
    global _frozen
    with _lock:
        if _frozen == 0:
            gc.freeze()
        _frozen += 1
    try:
        yield
    finally:
        with _lock:
            _frozen -= 1
            if _frozen == 0:
                gc.unfreeze()  # the next full collection (when idle) walks everything again
