"""Errors from jobs reach the user: superqt's generator workers drop a RuntimeError silently."""

from __future__ import annotations

import pytest

from napari_gleason._qt import workers


def _failing_job(kind):
    yield "started"
    raise kind("CUDA out of memory. Tried to allocate 2.00 GiB")


@pytest.mark.parametrize("kind", [RuntimeError, ValueError])
def test_an_error_in_a_generator_job_is_reported_and_the_job_ends(qtbot, monkeypatch, kind):
    shown, errors, finished, yielded = [], [], [], []
    monkeypatch.setattr(workers, "show_error", shown.append)
    worker = workers.start(_failing_job, kind, what="prediction", on_yield=yielded.append,
                           on_error=errors.append, on_finish=lambda: finished.append(True))
    qtbot.waitUntil(lambda: bool(finished), timeout=10_000)
    assert yielded == ["started"]
    assert len(errors) == 1 and type(errors[0]) is kind  # the job's own exception, unwrapped
    assert shown == [f"prediction failed: {kind.__name__}: CUDA out of memory. Tried to allocate 2.00 GiB"]
    assert worker is not None


def test_a_generator_job_still_returns_its_value(qtbot):
    def job():
        yield 1
        return "done"

    returned = []
    workers.start(job, what="x", on_return=returned.append)
    qtbot.waitUntil(lambda: bool(returned), timeout=10_000)
    assert returned == ["done"]
