"""The import warm-up: it imports what the first opening needs, stops when an opening begins, and
primes pint's unit registry (napari's first layer would build it)."""

import subprocess
import sys
import textwrap


def run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip()


def test_warm_up_imports_the_modules_in_a_daemon_thread_once():
    out = run("""
        import sys
        from napari_gleason import _warmup
        mods = ("json", "dask.array", "no_such_module_here", "zarr")
        assert "dask.array" not in sys.modules
        t = _warmup.warm_imports(mods)
        assert t.daemon and _warmup.warm_imports(mods) is t  # once per process
        t.join(120)
        print("dask.array" in sys.modules, "zarr" in sys.modules, "no_such_module_here" in sys.modules)
    """)
    assert out == "True True False"  # a module that fails is skipped, the rest still come in


def test_make_way_stops_the_warm_up_before_the_next_module():
    out = run("""
        import sys
        from napari_gleason import _warmup
        _warmup.make_way()  # an opening began before the thread got going
        _warmup.warm_imports(("dask.array",)).join(60)
        print("dask.array" in sys.modules)
    """)
    assert out == "False"


def test_prime_unit_registry_builds_pints_registry():
    out = run("""
        import pint
        reg = pint.get_application_registry()
        from napari_gleason._warmup import prime_unit_registry
        prime_unit_registry()
        print(type(reg.get()).__name__, str(reg.pixel))
    """)
    assert out.endswith("pixel") and "Lazy" not in out.split()[0]


def test_the_reader_makes_way(tmp_path):
    """Opening a core stops the warm-up (the reader calls make_way first)."""
    out = run(f"""
        from napari_gleason import _warmup, _reader
        _reader.read({str(tmp_path)!r}, kind="nothing we know")  # an error notification, not a crash
        print(_warmup._make_way.is_set())
    """)
    assert out.endswith("True")
