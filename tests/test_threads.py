"""The thread policy: what it chooses from given tick times, and that its
choices -- switching threads mid-run -- leave results unchanged."""

import numba
import numpy as np
import pytest
from factory import engine
from test_engine import busy_scenario

from tme_abm.core import engine as engine_module
from tme_abm.core.threads import ThreadPolicy


def drive(policy, n_threads, n_ticks, one, many):
    """Run the policy over ``n_ticks`` ticks that take ``one(tick)`` seconds
    on one thread and ``many(tick)`` on more.  Returns the threads of each."""
    used = []
    for tick in range(n_ticks):
        t = policy.threads(n_threads)
        used.append(t)
        policy.record(one(tick) if t == 1 else many(tick))
    return used


def test_probe_schedule_and_choice_follow_the_faster_mode():
    policy = ThreadPolicy(probe_every=20, probe_block=4, warmup_ticks=2)
    # all threads twice as fast in the first probe, twice as slow in the second
    # (tick 2 opens the first probe: a switch transient, not counted)
    used = drive(
        policy, 2, 42,
        one=lambda k: 9.0 if k == 2 else 1.0, many=lambda k: 0.5 if k < 20 else 2.0,
    )
    assert used[:2] == [1, 1]  # warm-up
    assert used[2:6] == [1] * 4 and used[6:10] == [2] * 4  # first probe
    assert used[10:22] == [2] * 12  # all threads chosen
    assert used[22:26] == [1] * 4 and used[26:30] == [2] * 4  # second probe
    assert used[30:42] == [1] * 12  # back to one thread
    assert [d[3] for d in policy.decisions] == [2, 1]
    # the first tick of each block is not counted
    assert policy.decisions[0][1:3] == (1.0, 0.5)


def test_small_gains_and_stalls_keep_one_thread():
    # 5% faster is within the hysteresis: stay on one thread
    policy = ThreadPolicy(probe_every=20, probe_block=4, min_gain=0.1)
    drive(policy, 2, 12, one=lambda k: 1.0, many=lambda k: 0.95)
    assert policy.choice == 1
    # mostly faster, but one stall for a scheduler slice: slower on average
    policy = ThreadPolicy(probe_every=20, probe_block=6, warmup_ticks=0)
    drive(policy, 2, 12, one=lambda k: 1.0, many=lambda k: 8.0 if k == 9 else 0.6)
    assert policy.choice == 1
    assert policy.decisions[0][2] > policy.decisions[0][1]


def test_one_thread_has_nothing_to_choose():
    policy = ThreadPolicy(probe_every=20, probe_block=4)
    used = drive(policy, 1, 60, one=lambda k: 1.0, many=lambda k: 0.1)
    assert used == [1] * 60
    assert policy.choice == 1 and policy.decisions == []


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="probe_block"):
        ThreadPolicy(probe_block=1)
    with pytest.raises(ValueError, match="probe_every"):
        ThreadPolicy(probe_every=8, probe_block=4)


def test_switching_threads_mid_run_leaves_results_unchanged(monkeypatch):
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba was started with one thread")
    # every kernel of this small run is "mid-size", so the policy decides
    monkeypatch.setattr(engine_module, "SERIAL_BELOW_CELLS", 0)
    monkeypatch.setattr(engine_module, "SERIAL_BELOW_FIELD_VOXELS", 0)
    data = busy_scenario(shape=(45, 45))
    before = numba.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            numba.set_num_threads(threads)
            e = engine(data)
            # short blocks: the run switches between 1 and 2 threads often
            e.thread_policy = ThreadPolicy(probe_every=5, probe_block=2, warmup_ticks=0)
            used = set()
            for _ in range(40):
                e.step()
                used.add(e._mid_threads)
            results.append((e.cells.columns(), e.conc.copy(), used))
    finally:
        numba.set_num_threads(before)
    assert results[0][2] == {1}
    assert results[1][2] == {1, 2}, "the policy never switched"
    for name in results[0][0]:
        assert np.array_equal(results[0][0][name], results[1][0][name]), name
    assert np.array_equal(results[0][1], results[1][1])
