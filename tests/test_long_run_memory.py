"""What keeps a long run's memory flat (issue 13, item 8), checked by structure.

A run that grows per tick is found by ``tme-abm bench``'s long-run memory
figure (resident memory per tick over 20,160 ticks); these tests check the two
causes it found, without timing or measuring memory: the runner's model keeps
no per-tick series in Python (they go to the run file, complete), and the run
writer opens its datasets without HDF5's chunk cache.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

import tme_abm.runner as runner
from tme_abm.io import RunWriter
from tme_abm.model import TMEModel
from tme_abm.scenario import load_scenario

TINY = Path(__file__).parent / "data" / "tiny.toml"
SHORT = ["domain.duration_days=0.1", "output.snapshot_every_min=60"]


@pytest.fixture
def run_with_model(tmp_path, monkeypatch) -> tuple[TMEModel, Path, list[h5py.Dataset]]:
    """A CLI-path run of tiny.toml, its model, and the writer's open datasets
    as they were in the middle of the run."""
    built: list[TMEModel] = []
    opened: list[h5py.Dataset] = []

    class Watched(TMEModel):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            built.append(self)

    real_writer = runner.RunWriter

    def watched_writer(*args, **kwargs):
        writer = real_writer(*args, **kwargs)

        def keep(_name, obj):
            if isinstance(obj, h5py.Dataset) and obj.chunks is not None:
                opened.append(obj)

        writer._file.visititems(keep)  # the chunked ones: the others have no chunk cache
        return writer

    monkeypatch.setattr(runner, "TMEModel", Watched)
    monkeypatch.setattr(runner, "RunWriter", watched_writer)
    caches = []

    def on_tick(model):
        if model.engine.tick == 3:  # the writer is open and has written
            caches.extend(ds.id.get_access_plist().get_chunk_cache() for ds in opened)

    out = tmp_path / "run.h5"
    runner.run_scenario(load_scenario(TINY, SHORT), out, progress=False, on_tick=on_tick)
    assert len(built) == 1 and len(caches) == len(opened) > 10
    return built[0], out, caches


def test_the_runner_keeps_no_per_tick_series_in_memory(run_with_model):
    model, _, _ = run_with_model
    assert model.engine.tick == model.n_ticks > 20
    kept = model.datacollector.model_vars
    assert set(kept) == set(model.series_names())
    assert all(len(values) == 0 for values in kept.values())


def test_the_run_file_holds_every_tick_of_every_series(run_with_model):
    model, out, _ = run_with_model
    # the same scenario and seed, stepped as a Python user would, keeping its series
    reference = TMEModel(load_scenario(TINY, SHORT))
    while reference.running:
        reference.step()
    want = reference.datacollector.get_model_vars_dataframe()
    assert len(want) == model.n_ticks + 1
    with h5py.File(out, "r") as f:
        ts = f["timeseries"]
        assert ts["tick_time"].shape == (model.n_ticks + 1,)
        for name in model.series_names():
            np.testing.assert_array_equal(ts[name][()], want[name].to_numpy(dtype=float),
                                          err_msg=name)


def test_the_writer_opens_its_datasets_without_a_chunk_cache(run_with_model):
    _, _, caches = run_with_model
    # (slots, bytes, w0): no bytes means no chunk is held once written
    assert {nbytes for _, nbytes, _ in caches} == {0}


def test_a_bare_writer_has_no_chunk_cache_either(tmp_path):
    model = TMEModel(TINY, overrides=SHORT, series_rows=0)
    with RunWriter(tmp_path / "w.h5", runner.run_layout(model)) as writer:
        assert writer._file.id.get_access_plist().get_cache()[2] == 0
        series = writer._file["timeseries"][model.series_names()[0]]
        assert series.id.get_access_plist().get_chunk_cache()[1] == 0
