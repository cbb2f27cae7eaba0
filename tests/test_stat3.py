"""Per-cell STAT3: bounds, analytic steady state, SOCS3 transience, knockout, inhibitor."""

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tme_abm.core.stat3 import FLAG_STAT3_KNOCKOUT, update_stat3


def run(
    conc,                      # (n_sites, nf) float32
    n_ticks=1,
    dt=5.0,
    k_on=0.05,
    k_off=0.01,
    socs3_production=0.0,
    socs3_decay=0.01,
    socs3_half_max=0.5,
    constitutive=0.0,
    inputs=(),                 # (field, weight, half_max, hill, socs3_sensitive)
    knockout=False,
    flags=None,
    inhibitor=(-1, 1.0, 1.0, 0.0),
    s0=0.0,
    record=False,
):
    n = conc.shape[0]
    types = np.zeros(n, dtype=np.int8)
    sites = np.arange(n, dtype=np.int32)
    flags = np.zeros(n, dtype=np.uint8) if flags is None else flags
    stat3 = np.full(n, s0, dtype=np.float32)
    socs3 = np.zeros(n, dtype=np.float32)
    drive = np.full(n, constitutive, dtype=np.float32)
    f = np.array([i[0] for i in inputs], dtype=np.int64)
    w = np.array([i[1] for i in inputs], dtype=np.float64)
    h = np.array([i[2] for i in inputs], dtype=np.float64)
    p = np.array([i[3] for i in inputs], dtype=np.float64)
    sens = np.array([i[4] for i in inputs], dtype=np.bool_)
    history = []
    for _ in range(n_ticks):
        update_stat3(
            n, types, sites, flags, stat3, socs3, drive, conc, dt,
            np.array([k_on]), np.array([k_off]), np.array([socs3_production]),
            np.array([socs3_decay]), np.array([socs3_half_max]),
            np.array([knockout], dtype=np.uint8), np.array([0, len(inputs)], dtype=np.int64),
            f, w, h, p, sens, *inhibitor,
        )
        if record:
            history.append(stat3.copy())
    return (np.array(history) if record else stat3), socs3


def test_relaxes_to_analytic_steady_state_along_the_exact_path():
    conc = np.array([[0.0], [0.5], [2.0], [10.0]], dtype=np.float32)
    k_on, k_off, dt, half = 0.05, 0.01, 5.0, 0.5
    hist, _ = run(conc, n_ticks=200, k_on=k_on, k_off=k_off, dt=dt,
                  inputs=[(0, 1.0, half, 1.0, False)], record=True)
    c = conc[:, 0].astype(np.float64)
    a = k_on * c / (c + half)
    s_star = a / (a + k_off)
    for tick in (1, 10, 50, 199):
        t = (tick + 1) * dt
        expected = s_star * (1 - np.exp(-(a + k_off) * t))
        np.testing.assert_allclose(hist[tick], expected, atol=2e-6)
    assert hist[-1, 0] == 0.0


def test_constitutive_drive_and_inputs_add():
    conc = np.array([[1.0]], dtype=np.float32)
    s, _ = run(conc, n_ticks=2000, constitutive=0.5, inputs=[(0, 2.0, 1.0, 1.0, False)])
    a = 0.05 * (0.5 + 2.0 * 0.5)
    assert math.isclose(s[0], a / (a + 0.01), rel_tol=1e-5)


@settings(max_examples=60, deadline=None)
@given(
    k_on=st.floats(0, 1e3), k_off=st.floats(1e-6, 1e3), dt=st.floats(1e-3, 1e3),
    c=st.floats(0, 1e6), s0=st.floats(0, 1), prod=st.floats(0, 1e3), decay=st.floats(0, 1e3),
)
def test_stat3_stays_in_unit_interval_and_socs3_non_negative(k_on, k_off, dt, c, s0, prod, decay):
    conc = np.array([[c]], dtype=np.float32)
    s, r = run(conc, n_ticks=3, dt=dt, k_on=k_on, k_off=k_off, constitutive=1.0, s0=s0,
               socs3_production=prod, socs3_decay=decay, inputs=[(0, 1.0, 1.0, 2.0, True)])
    assert 0.0 <= s[0] <= 1.0
    assert r[0] >= 0.0 and np.isfinite(r[0])


def test_socs3_makes_il6_transient_but_il10_sustained():
    conc = np.array([[5.0, 0.0], [0.0, 5.0]], dtype=np.float32)  # IL-6 only, IL-10 only
    inputs = [(0, 1.0, 0.5, 1.0, True), (1, 1.0, 0.5, 1.0, False)]
    hist, _ = run(conc, n_ticks=600, dt=1.0, k_on=0.1, k_off=0.02, socs3_production=0.05,
                  socs3_decay=0.005, socs3_half_max=0.2, inputs=inputs, record=True)
    il6, il10 = hist[:, 0], hist[:, 1]
    # IL-6: rises to a peak, then SOCS3 pulls it down by more than half
    peak = il6.argmax()
    assert 5 < peak < 200
    assert il6[-1] < 0.5 * il6[peak]
    # IL-10: never falls, ends near its SOCS3-free steady state
    assert np.all(np.diff(il10) >= -1e-7)
    a = 0.1 * 5.0 / 5.5
    assert math.isclose(il10[-1], a / (a + 0.02), rel_tol=1e-3)


def test_knockout_by_type_and_by_flag_holds_zero():
    conc = np.array([[10.0], [10.0]], dtype=np.float32)
    s, _ = run(conc, n_ticks=50, constitutive=1.0, s0=0.7, knockout=True)
    assert np.all(s == 0.0)
    flags = np.array([FLAG_STAT3_KNOCKOUT, 0], dtype=np.uint8)
    s, _ = run(conc, n_ticks=50, constitutive=1.0, s0=0.7, flags=flags)
    assert s[0] == 0.0 and s[1] > 0.8


def test_inhibitor_at_half_max_halves_the_activation_rate():
    # field 0 drives STAT3 (saturated), field 1 is the drug at its half-max
    conc = np.array([[1e6, 0.0], [1e6, 2.0]], dtype=np.float32)
    s, _ = run(conc, n_ticks=5000, dt=1.0, inputs=[(0, 1.0, 1.0, 1.0, False)],
               inhibitor=(1, 2.0, 1.0, 1.0))
    a = 0.05
    assert math.isclose(s[0], a / (a + 0.01), rel_tol=1e-4)
    assert math.isclose(s[1], 0.5 * a / (0.5 * a + 0.01), rel_tol=1e-4)


def _reference_step(t, s, r, flagged, drive, conc_row, dt, tab):
    """One cell's tick, written out from the module docstring's equations."""
    (k_on, k_off, prod, decay, k_socs, knockout, offset, fld, w, half, hill_n, sens, inh) = tab
    if knockout[t] or flagged:
        s_new = 0.0
    else:
        a_in = max(0.0, drive)
        for k in range(offset[t], offset[t + 1]):
            c = float(conc_row[fld[k]])
            h = 0.0 if c <= 0.0 else (c / half[k]) ** hill_n[k] / (1.0 + (c / half[k]) ** hill_n[k])
            if sens[k]:
                h *= 1.0 / (1.0 + r / k_socs[t])
            a_in += w[k] * h
        a = k_on[t] * a_in
        c = float(conc_row[inh[0]])
        x = 0.0 if c <= 0.0 else (c / inh[1]) ** inh[2]
        a *= 1.0 - inh[3] * (x / (1.0 + x))
        total = a + k_off[t]
        s_new = s
        if total > 0.0:
            s_star = a / total
            s_new = min(1.0, max(0.0, s_star + (s - s_star) * math.exp(-total * dt)))
    r_star = prod[t] * s_new / decay[t]
    return s_new, max(0.0, r_star + (r - r_star) * math.exp(-decay[t] * dt))


def test_blocked_kernel_matches_the_equations_cell_by_cell():
    """Mixed types in several blocks (a knocked-out type, flagged cells,
    Hill 1 and 2.5, SOCS3-sensitive inputs, an inhibitor, a type that cannot
    activate STAT3): every cell gets the value of the equations worked one
    cell at a time in plain Python."""
    from tme_abm.core.stat3 import STAT3_BLOCK

    rng = np.random.default_rng(3)
    n, nf, nt = 2 * STAT3_BLOCK + 77, 3, 4
    conc = rng.uniform(0, 2, (n, nf)).astype(np.float32)
    conc[rng.uniform(size=conc.shape) < 0.2] = 0.0
    types = rng.integers(0, nt, n).astype(np.int8)
    sites = rng.permutation(n).astype(np.int32)
    flags = np.where(rng.uniform(size=n) < 0.05, FLAG_STAT3_KNOCKOUT, 0).astype(np.uint8)
    stat3 = rng.uniform(0, 1, n).astype(np.float32)
    socs3 = rng.uniform(0, 2, n).astype(np.float32)
    drive = rng.uniform(-0.1, 0.5, n).astype(np.float32)
    tab = (  # type 3: k_on = 0 (it only decays, whatever its inputs)
        np.array([0.05, 0.2, 0.1, 0.0]), np.array([0.01, 0.02, 0.05, 0.04]),
        np.array([0.01, 0.03, 0.02, 0.02]), np.array([0.01, 0.02, 0.005, 0.01]),
        np.array([0.5, 1.0, 0.3, 0.5]), np.array([0, 0, 1, 0], dtype=np.uint8),
        np.array([0, 2, 5, 6, 7], dtype=np.int64),
        np.array([0, 1, 0, 1, 2, 0, 1], dtype=np.int64),
        np.array([1.0, 0.5, 2.0, 1.0, 0.7, 1.0, 1.0]),
        np.array([0.5, 0.3, 1.0, 0.2, 0.8, 0.5, 0.4]),
        np.array([1.0, 2.5, 1.0, 1.0, 2.5, 1.0, 1.0]),
        np.array([True, False, True, False, True, True, False]),
        (2, 0.7, 1.0, 0.6),
    )
    s_ref, r_ref = stat3.copy(), socs3.copy()
    stat3_before = stat3.copy()
    for i in range(n):
        s_ref[i], r_ref[i] = _reference_step(
            types[i], float(stat3[i]), float(socs3[i]), bool(flags[i]), float(drive[i]),
            conc[sites[i]], 5.0, tab,
        )
    update_stat3(n, types, sites, flags, stat3, socs3, drive, conc, 5.0, *tab[:12], *tab[12])
    np.testing.assert_array_max_ulp(stat3, s_ref, maxulp=1)
    np.testing.assert_array_max_ulp(socs3, r_ref, maxulp=1)
    assert np.all(stat3[types == 2] == 0.0) and np.all(stat3[flags > 0] == 0.0)
    assert np.mean(stat3 == s_ref) > 0.99  # agreement is exact but for rare float32 ties
    decaying = (types == 3) & (flags == 0)
    assert decaying.sum() > 100 and np.all(stat3[decaying] < stat3_before[decaying])
