"""Cell actions: die, kill, divide, transform, move; recruitment at vessels.

Cells act once per tick in turns by site colour: sites are coloured by their
coordinates modulo a period P (P = 3: 9 colours in 2D, 27 in 3D), the
colours take turns in a random order drawn afresh every tick (counter-based
keys, a pure function of seed and tick), and within a turn the cells act in
parallel -- two sites of one colour are P sites apart, so what their cells
read and write (everything within R = (P - 1) / 2 sites: the closed Moore
neighbourhood for P = 3) never overlaps and the order inside a turn does
not matter.  P = 2 R + 1 for the longest push reach R of any type (3 when
no type pushes).  This is the fast path of issue 6; tests check that it has no
preferred direction and gives identical runs on 1 and 2 threads.  A
cell's decisions use its own random streams keyed by (seed, tick, cell id,
purpose), so neither the thread count nor the order in which other cells
drew numbers changes them.  Rates r (1/min) become per-tick probabilities
``1 - exp(-r dt)``.  In order, a cell:

1. dies with its ``death`` rate (its site is freed at once, and its type's
   ``death_release`` amounts are added to the fields at that site, e.g. a
   danger signal from a dying tumour cell);
2. if it kills (``kill`` > 0 and fewer kills than its type's capacity),
   picks one neighbouring target at random and kills it with probability
   ``1 - exp(-kill * dt * (1 - kill_resistance_of_target))`` (a killed
   target releases like a dying one);
3. divides with its ``division`` rate into a random free Moore neighbour;
   the daughter copies STAT3, SOCS3, flags and behaviours, and does not act
   this tick.  With no free neighbour a type whose ``push_sites`` reach R
   is 1 does not divide (contact inhibition).  With R > 1 the cell looks
   for the nearest free sites (Chebyshev distance 2, then 3, ... up to R),
   picks one at random, and shoves the cells on the straight Moore path to
   it one step outward; the daughter takes the freed neighbour on that
   path.  Shoved cells lose their turn like displaced ones (below).
4. transforms into another type with the summed ``transform:<type>`` rates,
   the new type drawn in proportion to each rate; its behaviours are
   re-evaluated at once;
5. moves with probability ``min(1, speed dt / mean step length)`` to a free
   neighbour: with probability ``chemotaxis_bias`` the one with the highest
   concentration of its type's chemotaxis field (ties broken by a random
   starting point), otherwise a uniformly random one.  A type that
   ``infiltrates`` other types may also take a neighbour held by one of
   them, which moves to the mover's old site (an immune cell entering
   tumour tissue); a cell displaced this way before its own turn loses that
   turn (both sites lie in the mover's closed neighbourhood, so the colour
   scheme still holds).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from tme_abm.core.lattice import flat_offsets, neighbours_at, site_coords
from tme_abm.core.random import (
    PURPOSE_DEATH,
    PURPOSE_DIVIDE,
    PURPOSE_KILL,
    PURPOSE_MOVE,
    PURPOSE_RECRUIT,
    PURPOSE_TRANSFORM,
    PURPOSE_VESSEL,
    cell_key,
    purpose_stream,
    randint,
    tick_key,
    uniform,
    uniform_array,
)
from tme_abm.core.rules import (
    B_CHEMOTAXIS,
    B_DEATH,
    B_DIVISION,
    B_KILL,
    B_RESISTANCE,
    B_SPEED,
    N_FIXED_BEHAVIOURS,
    evaluate_cell,
    fill_signals,
)
from tme_abm.core.stat3 import hill

#: Rows of the per-tick event counter (columns are cell types).
EVENTS: tuple[str, ...] = ("deaths", "killed", "kills", "divisions", "transformed", "recruited")
EV_DEATH = 0
EV_KILLED = 1
EV_KILLS = 2
EV_DIVISION = 3
EV_TRANSFORM = 4
EV_RECRUIT = 5


@numba.njit(inline="always", cache=True)
def _free_neighbours(s, z, y, x, nz, ny, nx, offsets, steps, site_cell, nbuf, free):
    m = neighbours_at(s, z, y, x, nz, ny, nx, offsets, steps, nbuf)
    k = 0
    for q in range(m):
        # branch-free: write every neighbour, advance past the free ones
        # (occupancy is unpredictable, so a branch here mispredicts often)
        free[k] = nbuf[q]
        k += site_cell[nbuf[q]] < 0
    return k


@numba.njit(inline="always", cache=True)
def _open_neighbours(s, z, y, x, nz, ny, nx, offsets, steps, site_cell, types, enters, nbuf, out):
    """Neighbours a moving cell may take: free ones and those held by a type it infiltrates."""
    m = neighbours_at(s, z, y, x, nz, ny, nx, offsets, steps, nbuf)
    k = 0
    for q in range(m):
        j = site_cell[nbuf[q]]
        if j < 0 or enters[types[j]]:
            out[k] = nbuf[q]
            k += 1
    return k


@numba.njit(inline="always", cache=True)
def _toward(a: int, b: int) -> int:
    """One lattice step from coordinate ``a`` toward ``b``: -1, 0 or +1."""
    return (b > a) - (b < a)


@numba.njit(cache=True)
def push_for_daughter(z, y, x, nz, ny, nx, reach, site_cell, sites, st, shell, path):
    """Free a neighbour of site ``(z, y, x)`` by shoving cells; returns it, or -1.

    The nearest free sites (Chebyshev distance 2, then 3, ... up to
    ``reach``; the caller has found no free neighbour) are listed in site
    order and one is drawn with counter 2 of the stream ``st``.  The path
    to it steps every coordinate toward the target at once (a Moore path of
    ``d`` steps whose ``m``-th site is ``m`` sites from the cell, so every
    site on it but the last is occupied: a free one would be nearer).  Each
    cell on the path moves one step outward, from the far end in, which
    frees the path's first site.  Everything read or written lies within
    ``reach`` sites of the cell.  ``shell`` needs room for ``(2 reach +
    1) ** ndim`` sites, ``path`` for ``reach + 1``.
    """
    for dist in range(2, reach + 1):
        k = 0
        z0 = max(z - dist, 0)
        z1 = min(z + dist, nz - 1)
        y0 = max(y - dist, 0)
        y1 = min(y + dist, ny - 1)
        x0 = max(x - dist, 0)
        x1 = min(x + dist, nx - 1)
        for zz in range(z0, z1 + 1):
            on_z = abs(zz - z) == dist
            for yy in range(y0, y1 + 1):
                on_zy = on_z or abs(yy - y) == dist
                row = (zz * ny + yy) * nx
                if on_zy:  # a whole face row of the shell
                    for xx in range(x0, x1 + 1):
                        shell[k] = row + xx
                        k += site_cell[row + xx] < 0
                else:  # only the row's two ends lie on the shell
                    if x - dist >= 0:
                        shell[k] = row + x - dist
                        k += site_cell[row + x - dist] < 0
                    if x + dist < nx:
                        shell[k] = row + x + dist
                        k += site_cell[row + x + dist] < 0
        if k == 0:
            continue
        target = shell[randint(st, 2, k)]
        tz, ty, tx = site_coords(target, ny, nx)
        pz, py, px = z, y, x
        for m in range(1, dist + 1):
            pz += _toward(pz, tz)
            py += _toward(py, ty)
            px += _toward(px, tx)
            path[m] = (pz * ny + py) * nx + px
        for m in range(dist - 1, 0, -1):
            j = site_cell[path[m]]
            site_cell[path[m + 1]] = j
            sites[j] = path[m + 1]
        site_cell[path[1]] = -1
        return path[1]
    return -1


@numba.njit(inline="always", cache=True)
def occurs(u: float, rate_dt: float) -> bool:
    """Does an event of probability ``1 - exp(-rate_dt)`` happen for the draw ``u``?

    ``1 - exp(-x) <= x``, so a draw ``u >= x`` settles it without the
    ``expm1`` call (most draws: events per tick are rare); the decision is
    the one ``u < -expm1(-x)`` gives.
    """
    return u < rate_dt and u < -math.expm1(-rate_dt)


def colour_period(push_sites: np.ndarray) -> int:
    """Period P of the site colours: ``2 R + 1`` for the longest push reach R (at least 3).

    Cells acting in one turn must not reach a common site; a cell reaches
    its closed Moore neighbourhood, and ``R`` sites when it pushes.
    """
    reach = int(push_sites.max()) if push_sites.size else 1
    return 2 * max(reach, 1) + 1


def colour_count(nz: int, period: int = 3) -> int:
    """Number of site colours: P x P in 2D, P x P x P in 3D (see :func:`act`)."""
    return period**3 if nz > 1 else period**2


@numba.njit(cache=True, parallel=True)
def act(
    n0, colours, max_threads, seed, tick, dt_min, mean_step_um, next_id, geom, state, rules,
    need_contacts, n_signals, kill_target, kill_capacity, chemotaxis_field, infiltrates,
    push_sites, death_release, conc_flat, events, listed, n_listed,
):
    """Let every cell of rows ``0..n0-1`` act once; returns ``(n, next_id)``.

    Sites are coloured by ``(z mod P, y mod P, x mod P)``, ``P =
    listed.shape[1]`` (see :func:`colour_period`).  Two sites of one colour
    are at least P sites apart, so everything their cells read or write when
    they act (all within ``(P - 1) / 2`` sites: the closed Moore
    neighbourhood, or a push's reach ``push_sites[type]``) is disjoint: the
    cells of one colour act in parallel, in any order, with the same result.
    Colours take turns in the order ``colours`` (a fresh random permutation
    every tick, so no colour, and hence no direction, is favoured);
    a cell acts in the turn of the site it holds when the turn comes, at most
    once per tick.  The daughter of row ``i`` goes into row ``n0 + i``; rows
    ``n0..2 n0 - 1`` that stay empty keep ``site = -1`` (removed by
    ``CellTable.compact``), and daughters get their ids in row order after
    the last turn, so ids too are independent of the thread count.  Event
    counts are summed per thread, then added to ``events``.

    ``state`` is ``(ids, types, sites, stat3, socs3, kills, flags, behaviours,
    site_cell)`` with room for ``2 * n0`` rows; ``geom`` is ``(nz, ny, nx,
    offsets)``; ``rules`` is the tuple taken by
    :func:`tme_abm.core.rules.evaluate_cell`; ``death_release`` is (types,
    fields) in ng/mL added to a dying cell's site; ``max_threads`` bounds the
    thread ids (``numba.config.NUMBA_NUM_THREADS``).  ``listed`` (int32,
    ``(nz * ny, P, (nx + P - 1) // P)``) and ``n_listed`` (int32, ``(nz * ny,
    P)``) are scratch, overwritten with the rows of each line's cells by
    ``x mod P`` (the caller keeps them, so no tick pays page faults for them).
    ``push_sites`` (int64 per type) is each type's push reach (1: none).
    """
    nz, ny, nx, offsets = geom
    ids, types, sites, stat3, socs3, kills, flags, beh, site_cell = state
    base, sat_up, sat_down, r_off, r_sig, r_beh, r_up, r_half, r_hill = rules
    nf = conc_flat.shape[1]
    nt = kill_target.shape[0]
    tcol = N_FIXED_BEHAVIOURS + 2 * nf
    for r in numba.prange(n0):
        sites[n0 + r] = -1
    tk = tick_key(seed, tick)
    # List the cells of each line by x mod 3, in site order, before any cell
    # acts: a turn then visits just its cells, not every site of its colour
    # (1 in 4 sites holds a cell in the random walk of the Mesa comparison:
    # 44 -> 34 ns per cell, measured), and no `acted` mark is needed -- a
    # cell moves only when it acts, so each is listed once, under the site it
    # holds when its turn comes.  The listing is branch-free (occupancy is
    # unpredictable where immune cells mingle), three chains along one read.
    period = listed.shape[1]
    if period != 3:  # pushing types: the general listing (x mod P)
        for line in numba.prange(nz * ny):
            row = line * nx
            for c in range(period):
                n_listed[line, c] = 0
            for x in range(nx):
                c = x % period
                i0 = site_cell[row + x]
                listed[line, c, n_listed[line, c]] = i0
                n_listed[line, c] += i0 >= 0
    for line in numba.prange(nz * ny if period == 3 else 0):
        row = line * nx
        seg0 = listed[line, 0]
        seg1 = listed[line, 1]
        seg2 = listed[line, 2]
        k0 = 0
        k1 = 0
        k2 = 0
        x = 0
        while x + 2 < nx:  # three independent chains, one sequential read
            i0 = site_cell[row + x]
            i1 = site_cell[row + x + 1]
            i2 = site_cell[row + x + 2]
            seg0[k0] = i0
            seg1[k1] = i1
            seg2[k2] = i2
            k0 += i0 >= 0
            k1 += i1 >= 0
            k2 += i2 >= 0
            x += 3
        if x < nx:
            i0 = site_cell[row + x]
            seg0[k0] = i0
            k0 += i0 >= 0
        if x + 1 < nx:
            i1 = site_cell[row + x + 1]
            seg1[k1] = i1
            k1 += i1 >= 0
        n_listed[line, 0] = k0
        n_listed[line, 1] = k1
        n_listed[line, 2] = k2
    steps = flat_offsets(offsets, ny, nx)
    # types whose transform rates are zero whatever their signals (base and
    # both saturations zero): their cells skip reading the transform columns
    can_infiltrate = np.zeros(nt, dtype=np.bool_)
    for u in range(nt):
        for v in range(nt):
            if infiltrates[u, v]:
                can_infiltrate[u] = True
    can_transform = np.zeros(nt, dtype=np.bool_)
    for u in range(nt):
        for v in range(nt):
            b = tcol + v
            if v != u and (base[u, b] > 0.0 or sat_up[u, b] > 0.0 or sat_down[u, b] > 0.0):
                can_transform[u] = True
    # per-thread scratch, allocated once (not once per line of every colour);
    # rows padded by a 64-byte cache line so that two threads never write
    # to one line (false sharing)
    pad = 8
    nbufs = np.empty((max_threads, offsets.shape[0] + pad), dtype=np.int64)
    frees = np.empty((max_threads, offsets.shape[0] + pad), dtype=np.int64)
    sigs = np.empty((max_threads, n_signals + pad), dtype=np.float64)
    reach = (period - 1) // 2
    shell_len = (2 * reach + 1) ** (3 if nz > 1 else 2)
    shells = np.empty((max_threads, shell_len + pad), dtype=np.int64)
    paths = np.empty((max_threads, reach + 1 + pad), dtype=np.int64)
    local = np.zeros((max_threads, events.shape[0], nt + pad), dtype=np.int64)
    for ci in range(colours.shape[0]):
        colour = colours[ci]
        cz = colour // (period * period)
        cy = (colour // period) % period
        cx = colour % period
        n_y = (ny - cy + period - 1) // period
        n_lines = ((nz - cz + period - 1) // period) * n_y
        for line in numba.prange(n_lines):
            z = cz + period * (line // n_y)
            y = cy + period * (line % n_y)
            th = numba.get_thread_id()
            ev = local[th]
            nbuf = nbufs[th, : offsets.shape[0]]
            free = frees[th, : offsets.shape[0]]
            sig = sigs[th, :n_signals]
            shell = shells[th, :shell_len]
            path = paths[th, : reach + 1]
            lz = z * ny + y
            row = lz * nx
            seg = listed[lz, cx]
            m_here = n_listed[lz, cx]
            for slot in range(m_here):
                i = seg[slot]
                s = sites[i]
                if s < 0:  # killed this tick, in an earlier turn
                    continue
                x = s - row
                if x < 0 or x >= nx or x % period != cx:
                    # displaced to a neighbouring site (another colour) by an
                    # infiltrating or pushing cell earlier this tick: it lost its turn
                    continue
                d = n0 + i  # the row of a daughter
                t = types[i]
                ck = cell_key(tk, ids[i])  # shared rounds of this cell's streams
                # 1. death
                rate = beh[i, B_DEATH]
                if rate > 0.0:
                    u_death = uniform(purpose_stream(ck, PURPOSE_DEATH), 0)
                    if occurs(u_death, rate * dt_min):
                        sites[i] = -1
                        site_cell[s] = -1
                        for f in range(nf):
                            conc_flat[s, f] += death_release[t, f]
                        ev[EV_DEATH, t] += 1
                        continue
                # 2. kill one neighbouring target
                rate = beh[i, B_KILL]
                if rate > 0.0 and (kill_capacity[t] == 0 or kills[i] < kill_capacity[t]):
                    m = neighbours_at(s, z, y, x, nz, ny, nx, offsets, steps, nbuf)
                    n_targets = 0
                    for q in range(m):
                        j = site_cell[nbuf[q]]
                        if j >= 0 and kill_target[t, types[j]]:
                            free[n_targets] = j
                            n_targets += 1
                    if n_targets > 0:
                        st = purpose_stream(ck, PURPOSE_KILL)
                        j = free[randint(st, 0, n_targets)]
                        if occurs(uniform(st, 1), rate * dt_min * (1.0 - beh[j, B_RESISTANCE])):
                            tj = types[j]
                            sj = sites[j]
                            site_cell[sj] = -1
                            sites[j] = -1
                            for f in range(nf):
                                conc_flat[sj, f] += death_release[tj, f]
                            kills[i] += 1
                            ev[EV_KILLED, tj] += 1
                            ev[EV_KILLS, t] += 1
                # 3. divide into a free neighbour, or push one free
                rate = beh[i, B_DIVISION]
                if rate > 0.0:
                    st = purpose_stream(ck, PURPOSE_DIVIDE)
                    if occurs(uniform(st, 0), rate * dt_min):
                        k = _free_neighbours(
                            s, z, y, x, nz, ny, nx, offsets, steps, site_cell, nbuf, free
                        )
                        ds = -1
                        if k > 0:
                            ds = free[randint(st, 1, k)]
                        elif push_sites[t] > 1:
                            ds = push_for_daughter(
                                z, y, x, nz, ny, nx, push_sites[t], site_cell, sites, st,
                                shell, path,
                            )
                        if ds >= 0:
                            types[d] = t
                            sites[d] = ds
                            stat3[d] = stat3[i]
                            socs3[d] = socs3[i]
                            kills[d] = 0
                            flags[d] = flags[i]
                            beh[d, :] = beh[i, :]
                            site_cell[ds] = d
                            ev[EV_DIVISION, t] += 1
                # 4. transform into another type
                total = 0.0
                if can_transform[t]:
                    for u in range(nt):
                        if u != t:
                            total += beh[i, tcol + u]
                if total > 0.0:
                    st = purpose_stream(ck, PURPOSE_TRANSFORM)
                    if occurs(uniform(st, 0), total * dt_min):
                        pick_rate = uniform(st, 1) * total
                        new_t = -1
                        for u in range(nt):
                            r_u = beh[i, tcol + u]
                            if u != t and r_u > 0.0:
                                new_t = u
                                pick_rate -= r_u
                                if pick_rate < 0.0:
                                    break
                        types[i] = new_t
                        t = new_t
                        ev[EV_TRANSFORM, t] += 1
                        fill_signals(
                            i, types, sites, stat3, socs3, kills, site_cell, conc_flat,
                            nz, ny, nx, offsets, need_contacts[t], sig, nbuf,
                        )
                        evaluate_cell(
                            t, sig, base, sat_up, sat_down, r_off, r_sig, r_beh, r_up, r_half,
                            r_hill, beh[i],
                        )
                # 5. move
                speed = beh[i, B_SPEED]
                if speed > 0.0:
                    st = purpose_stream(ck, PURPOSE_MOVE)
                    if uniform(st, 0) < speed * dt_min / mean_step_um:
                        if can_infiltrate[t]:
                            k = _open_neighbours(
                                s, z, y, x, nz, ny, nx, offsets, steps, site_cell, types,
                                infiltrates[t], nbuf, free,
                            )
                        else:
                            k = _free_neighbours(
                                s, z, y, x, nz, ny, nx, offsets, steps, site_cell, nbuf, free
                            )
                        if k > 0:
                            pick = -1
                            f = chemotaxis_field[t]
                            if f >= 0 and uniform(st, 1) < beh[i, B_CHEMOTAXIS]:
                                start = randint(st, 2, k)
                                best = -1.0
                                for q in range(k):
                                    kk = (start + q) % k
                                    v = conc_flat[free[kk], f]
                                    if v > best:
                                        best = v
                                        pick = kk
                            if pick < 0:
                                pick = randint(st, 3, k)
                            ns = free[pick]
                            j = site_cell[ns]
                            site_cell[s] = j  # -1, or the cell it swaps places with
                            if j >= 0:
                                sites[j] = s
                            site_cell[ns] = i
                            sites[i] = ns
    for th in range(max_threads):
        for e in range(events.shape[0]):
            for u in range(nt):
                events[e, u] += local[th, e, u]
    for d in range(n0, 2 * n0):
        if sites[d] >= 0:
            ids[d] = next_id
            next_id += 1
    return 2 * n0, next_id


@numba.njit(parallel=True, cache=True)
def _recruit_hits(
    seed, tick, dt_min, vessel_sites, rate_per_min, signal_field, half_max, hill_power,
    basal_fraction, conc_flat,
):
    """``hit[v, t]``: does type ``t`` enter at vessel ``v`` this tick?

    Each (vessel, type) draw has a stream of its own and reads only the
    fields, which recruitment does not change, so the draws can all be made
    first, in parallel, with the values the sequential pass would get.
    """
    nt = rate_per_min.shape[0]
    nv = vessel_sites.shape[0]
    tk = tick_key(seed, tick)  # the rounds shared by every draw of this tick
    hit = np.zeros((nv, nt), dtype=np.bool_)
    for v in numba.prange(nv):
        vs = vessel_sites[v]
        for t in range(nt):
            rate = rate_per_min[t]
            if rate <= 0.0:
                continue
            level = 1.0
            if signal_field[t] >= 0:
                level = basal_fraction[t] + (1.0 - basal_fraction[t]) * hill(
                    conc_flat[vs, signal_field[t]], half_max[t], hill_power[t]
                )
            st = purpose_stream(cell_key(tk, v * nt + t), PURPOSE_RECRUIT)
            hit[v, t] = occurs(uniform(st, 0), rate * level * dt_min)
    return hit


@numba.njit(cache=True)
def recruit(
    n, seed, tick, dt_min, next_id, vessel_sites, geom, state, rules, need_contacts, n_signals,
    rate_per_min, signal_field, half_max, hill_power, basal_fraction, initial_stat3,
    conc_flat, events,
):
    """Recruit immune cells at vessel sites; returns ``(n, next_id)``.

    Vessels are visited in a random order drawn each tick.  At each vessel,
    type ``t`` enters with probability ``1 - exp(-rate_t * level * dt)``,
    ``level = basal + (1 - basal) * Hill(signal at the vessel)`` (``level = 1``
    without a signal field), on the vessel site if free or else a random
    free neighbour.  Arrays need room for ``n + len(vessel_sites) * n_types``.

    The entry draws are made first, in parallel (:func:`_recruit_hits`); only
    the vessels with an entry are then ordered and visited, in the order of
    their keys among all vessels' (the same order as sorting every vessel).
    """
    nz, ny, nx, offsets = geom
    ids, types, sites, stat3, socs3, kills, flags, beh, site_cell = state
    base, sat_up, sat_down, r_off, r_sig, r_beh, r_up, r_half, r_hill = rules
    nt = rate_per_min.shape[0]
    steps = flat_offsets(offsets, ny, nx)
    tk = tick_key(seed, tick)
    nbuf = np.empty(offsets.shape[0], dtype=np.int64)
    free = np.empty(offsets.shape[0], dtype=np.int64)
    sig = np.empty(n_signals, dtype=np.float64)
    hit = _recruit_hits(
        seed, tick, dt_min, vessel_sites, rate_per_min, signal_field, half_max, hill_power,
        basal_fraction, conc_flat,
    )
    active = np.empty(vessel_sites.shape[0], dtype=np.int64)
    n_active = 0
    for v in range(vessel_sites.shape[0]):
        for t in range(nt):
            if hit[v, t]:
                active[n_active] = v
                n_active += 1
                break
    active = active[:n_active]
    keys = uniform_array(seed, tick, active, PURPOSE_VESSEL, 0)
    vessel_order = active[np.argsort(keys, kind="mergesort")]
    for q in range(n_active):
        v = vessel_order[q]
        vs = vessel_sites[v]
        for t in range(nt):
            if not hit[v, t]:
                continue
            st = purpose_stream(cell_key(tk, v * nt + t), PURPOSE_RECRUIT)
            if site_cell[vs] < 0:
                target = vs
            else:
                vz, vy, vx = site_coords(vs, ny, nx)
                k = _free_neighbours(
                    vs, vz, vy, vx, nz, ny, nx, offsets, steps, site_cell, nbuf, free
                )
                if k == 0:
                    continue
                target = free[randint(st, 1, k)]
            d = n
            n += 1
            ids[d] = next_id
            next_id += 1
            types[d] = t
            sites[d] = target
            stat3[d] = initial_stat3[t]
            socs3[d] = 0.0
            kills[d] = 0
            flags[d] = 0
            site_cell[target] = d
            fill_signals(
                d, types, sites, stat3, socs3, kills, site_cell, conc_flat,
                nz, ny, nx, offsets, need_contacts[t], sig, nbuf,
            )
            evaluate_cell(
                t, sig, base, sat_up, sat_down, r_off, r_sig, r_beh, r_up, r_half, r_hill, beh[d]
            )
            events[EV_RECRUIT, t] += 1
    return n, next_id
