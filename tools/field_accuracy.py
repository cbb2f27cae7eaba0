"""Accuracy of field-step schemes where cells sense fields: the table behind docs/numerics.md.

Usage::

    python tools/field_accuracy.py [--out docs/numerics_accuracy.md]

For every field of the shipped baseline (20 µm sites, 5-min ticks), a single
site secretes 1 ng/mL per min from t = 0 into an empty 65 x 65 lattice with
no-flux walls.  Each scheme's field is compared with the exact solution of
the same lattice equations (per DCT mode, in float64, computed here):

* ratio to the reference at the source site and 1, 2, 3 and 5 sites along an
  axis, at steady state and 30 min after the source starts;
* diagonal vs axis at equal distance: ``c(3,4)/c(0,5)`` minus the
  reference's (0 for an isotropic scheme);
* steady total amount over ``S/k``.

Schemes: the two the model ships (``exact``: tme_abm.core.spectral;
``lod``: tme_abm.core.fields, backward Euler one axis at a time, sources
added per site before the sweeps), and candidates written out here only for
the comparison: LOD with 4 sub-steps per tick, unsplit backward Euler (fast
solver by DCT, source on the right-hand side, decay inside the implicit
operator) and Douglas ADI (theta = 1).  Also a 3-D Gaussian (sigma = 2
sites, 31^3) after 4 ticks, L2 error against the separable exact solution.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import scipy.fft as sf
import scipy.linalg
from scipy.linalg import solve_banded

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tme_abm.core.fields import apply_sources, diffuse_decay  # noqa: E402
from tme_abm.core.spectral import ExactFieldStep, scatter_sources  # noqa: E402
from tme_abm.scenario import load_scenario  # noqa: E402
from tme_abm.scenario.library import resolve  # noqa: E402

DX, DT, N = 20.0, 5.0, 65
C0 = N // 2
DISTANCES = (0, 1, 2, 3, 5)


def baseline_fields() -> list[tuple[str, float, float]]:
    sc = load_scenario(resolve("baseline")).scenario
    return [
        (name, f.diffusion_um2_per_min, math.log(2) / f.half_life_min if f.half_life_min else 0.0)
        for name, f in sc.fields.items()
    ]


def _lam(n: int) -> np.ndarray:
    return 2.0 - 2.0 * np.cos(np.pi * np.arange(n) / n)


MU2 = _lam(N)[:, None] + _lam(N)[None, :]


def _source() -> np.ndarray:
    s = np.zeros((N, N))
    s[C0, C0] = 1.0
    return s


def reference(d: float, k: float, t_min: float | None) -> np.ndarray:
    mu = d / DX**2 * MU2 + k
    sh = sf.dctn(_source(), type=2)
    ch = sh / mu if t_min is None else sh * -np.expm1(-mu * t_min) / mu
    return sf.idctn(ch, type=2)


def run_exact(d: float, k: float, ticks: int) -> np.ndarray:
    step = ExactFieldStep((1, N, N), np.array([d]), DX, DT, np.zeros(1, bool), np.zeros(1))
    conc = np.zeros((1, N, N, 1), np.float32)
    src = np.zeros_like(conc)
    site = np.array([C0 * N + C0])
    for _ in range(ticks):
        scatter_sources(src, site, np.ones((1, 1), np.float32))
        step.step(conc, np.array([k]), src)
    return conc[0, :, :, 0].astype(np.float64)


def run_lod(d: float, k: float, ticks: int, sub: int = 1) -> np.ndarray:
    dt = DT / sub
    conc = np.zeros((1, N, N, 1), np.float32)
    r = np.array([d * dt / DX**2])
    site = np.array([C0 * N + C0])
    one = np.ones((1, 1), np.float32)
    for _ in range(ticks * sub):
        apply_sources(conc, site, one, np.zeros((1, 1), np.float32), dt)
        diffuse_decay(conc, r, np.array([k]), dt, np.zeros(1, bool), np.zeros(1))
    return conc[0, :, :, 0].astype(np.float64)


def run_backward_euler(d: float, k: float, ticks: int) -> np.ndarray:
    mu = d / DX**2 * MU2 + k
    sh = sf.dctn(_source(), type=2)
    ch = np.zeros_like(sh)
    for _ in range(ticks):
        ch = (ch + DT * sh) / (1.0 + mu * DT)
    return sf.idctn(ch, type=2)


def _lap1(u: np.ndarray) -> np.ndarray:
    v = np.empty_like(u)
    v[1:-1] = u[2:] - 2 * u[1:-1] + u[:-2]
    v[0] = u[1] - u[0]
    v[-1] = u[-2] - u[-1]
    return v


def run_douglas(d: float, k: float, ticks: int) -> np.ndarray:
    r = d * DT / DX**2
    ab = np.zeros((3, N))
    ab[0, 1:] = -r
    ab[2, :-1] = -r
    ab[1, :] = 1 + 2 * r
    ab[1, 0] -= r
    ab[1, -1] -= r
    c = np.zeros((N, N))
    s = _source()
    for _ in range(ticks):
        ly = _lap1(c.T).T
        c1 = solve_banded((1, 1), ab, c + r * ly + DT * (s - k * c))
        c = solve_banded((1, 1), ab, (c1 - r * ly).T).T
    return c


SCHEMES = {
    "exact (shipped default)": run_exact,
    "LOD (shipped, `lod`)": run_lod,
    "LOD, 4 sub-steps": lambda d, k, t: run_lod(d, k, t, 4),
    "backward Euler, unsplit": run_backward_euler,
    "Douglas ADI": run_douglas,
}


def metrics(c: np.ndarray, ref: np.ndarray) -> tuple[list[float], float]:
    ratios = [c[C0 + j, C0] / ref[C0 + j, C0] for j in DISTANCES]
    diag = c[C0 + 3, C0 + 4] / c[C0, C0 + 5] - ref[C0 + 3, C0 + 4] / ref[C0, C0 + 5]
    return ratios, diag


def gaussian_3d_error(d: float, k: float, scheme: str) -> float:
    n, sigma = 31, 2.0
    x = np.arange(n) - n // 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    conc = np.einsum("i,j,k->ijk", g, g, g)[..., None].astype(np.float32)
    for _ in range(4):
        if scheme == "exact":
            ExactFieldStep((n, n, n), np.array([d]), DX, DT, np.zeros(1, bool),
                           np.zeros(1)).step(conc, np.array([k]), None)  # fmt: skip
        else:
            diffuse_decay(conc, np.array([d * DT / DX**2]), np.array([k]), DT,
                          np.zeros(1, bool), np.zeros(1))  # fmt: skip
    lap = np.diag(np.full(n, 2.0)) - np.eye(n, k=1) - np.eye(n, k=-1)
    lap[0, 0] = lap[-1, -1] = 1.0
    h = scipy.linalg.expm(-4 * DT * d / DX**2 * lap) @ g
    ref = np.einsum("i,j,k->ijk", h, h, h) * math.exp(-4 * DT * k)
    return float(np.linalg.norm(conc[..., 0] - ref) / np.linalg.norm(ref))


def uptake_ratio(d: float, k: float, u: float, scheme: str) -> float:
    """Steady value at an isolated consuming cell (uptake ``u`` 1/min) in a field
    supplied uniformly (0.01 ng/mL per min everywhere), over the exact steady state."""
    import scipy.sparse as sp
    import scipy.sparse.linalg as spl

    n = 41
    c0 = n // 2
    site = np.array([c0 * n + c0])
    lap1 = sp.diags([-np.ones(n - 1), np.r_[1.0, np.full(n - 2, 2.0), 1.0], -np.ones(n - 1)],
                    [-1, 0, 1])  # fmt: skip
    eye = sp.identity(n)
    m = d / DX**2 * (sp.kron(lap1, eye) + sp.kron(eye, lap1)) + k * sp.identity(n * n)
    m = (m + sp.csr_matrix(([u], ([site[0]], [site[0]])), shape=(n * n, n * n))).tocsc()
    ref = spl.spsolve(m, np.full(n * n, 0.01))[site[0]]
    conc = np.zeros((1, n, n, 1), np.float32)
    src = np.full_like(conc, 0.01)
    up = np.full((1, 1), u, np.float32)
    from tme_abm.core.spectral import apply_uptake

    step = ExactFieldStep((1, n, n), np.array([d]), DX, DT, np.zeros(1, bool), np.zeros(1))
    for _ in range(3000):
        if scheme == "exact":
            apply_uptake(conc, site, up, DT)
            step.step(conc, np.array([k]), src.copy())
        else:
            conc += np.float32(0.01 * DT)
            apply_sources(conc, site, np.zeros((1, 1), np.float32), up, DT)
            diffuse_decay(conc, np.array([d * DT / DX**2]), np.array([k]), DT,
                          np.zeros(1, bool), np.zeros(1))  # fmt: skip
    return float(conc[0, c0, c0, 0] / ref)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="also write the markdown here")
    args = ap.parse_args(argv)
    lines = [
        "| field | D (µm²/min), r = D dt/dx² | when | scheme | ratio at 0 / 1 / 2 / 3 / 5 sites "
        "| diagonal − axis | steady total / (S/k) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, d, k in baseline_fields():
        for when, ticks, t_ref in (("steady", 3000, None), ("30 min", 6, 30.0)):
            ref = reference(d, k, t_ref)
            for label, fn in SCHEMES.items():
                c = fn(d, k, ticks)
                ratios, diag = metrics(c, ref)
                total = f"{c.sum() * k:.4f}" if when == "steady" and k > 0 else ""
                lines.append(
                    f"| {name} | {d:g}, {d * DT / DX**2:.3g} | {when} | {label} | "
                    + " / ".join(f"{x:.3f}" for x in ratios)
                    + f" | {diag:+.3f} | {total} |"
                )
            print("\n".join(lines[-len(SCHEMES) :]), flush=True)
    lines += ["", "| field | 3-D Gaussian after 20 min, L2 error: exact | LOD |", "|---|---|---|"]
    for name, d, k in baseline_fields():
        exact, lod = gaussian_3d_error(d, k, "exact"), gaussian_3d_error(d, k, "lod")
        lines.append(f"| {name} | {exact:.2e} | {lod:.3f} |")
        print(lines[-1], flush=True)
    lines += [
        "",
        "| field | uptake u (1/min) | consumer's site / exact steady state: exact step | LOD |",
        "|---|---|---|---|",
    ]
    for name, d, k in baseline_fields():
        if name not in ("il6", "il10"):
            continue
        for u in (0.01, 0.05, 0.5, 5.0):
            ex, lod = uptake_ratio(d, k, u, "exact"), uptake_ratio(d, k, u, "lod")
            lines.append(f"| {name} | {u:g} | {ex:.3f} | {lod:.3f} |")
            print(lines[-1], flush=True)
    if args.out:
        args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
