"""Static figures and movies: ``tme-abm plot`` / ``tme-abm movie`` and tme_abm.viz.plots.

Runs are tests/data/tiny.toml shortened to a few simulated hours (about a
second each); sweep folders are a real 4-run sweep of the same and a
hand-written summary.csv whose numbers are known.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import h5py
import imageio_ffmpeg
import numpy as np
import pytest
from factory import partial_run_file
from matplotlib.colors import to_rgb
from PIL import Image

from tme_abm.batch import sweep as sweep_module
from tme_abm.cli import main
from tme_abm.io import cell_type_labels
from tme_abm.runner import run_scenario
from tme_abm.scenario import load_scenario
from tme_abm.viz import plots

TINY = Path(__file__).parent / "data" / "tiny.toml"
KILL = "cell_types.cd8.kill_rate_per_min"


def _run(path: Path, *overrides: str) -> Path:
    run_scenario(load_scenario(TINY, ["domain.duration_days=0.25", *overrides]), path,
                 progress=False)
    return path


@pytest.fixture(scope="module")
def run_file(tmp_path_factory) -> Path:
    """Snapshots at 0, 120, 240 and 360 min."""
    return _run(tmp_path_factory.mktemp("run") / "tiny.h5")


@pytest.fixture(scope="module")
def no_cells_run(tmp_path_factory) -> Path:
    """No cells table and no fields: only the lattice and the time series."""
    return _run(tmp_path_factory.mktemp("nocells") / "nocells.h5", "output.cells=false",
                "output.fields=[]")


@pytest.fixture(scope="module")
def run_3d(tmp_path_factory) -> Path:
    return _run(tmp_path_factory.mktemp("r3d") / "cube.h5", "domain.shape=[7,40,40]",
                "domain.duration_days=0.1")


@pytest.fixture(scope="module")
def real_sweep(tmp_path_factory) -> Path:
    """A 2 x 2 grid sweep of tiny (4 runs, 0.05 days each)."""
    from tme_abm.batch.sweep import run_sweep

    tmp = tmp_path_factory.mktemp("sweep")
    sweep = tmp / "s.toml"
    sweep.write_text(
        f'name = "s"\nscenarios = ["{TINY.as_posix()}"]\nreplicates = 2\n'
        f'[[parameters]]\nkey = "{KILL}"\nvalues = [0.01, 0.02]\n'
        '[overrides]\n"domain.duration_days" = 0.05\n"output.snapshot_every_min" = 30\n'
        '"output.cells" = false\n"output.fields" = []\n'
    )
    _, out = run_sweep(sweep, tmp / "out", progress=False)
    return out


def hand_sweep(folder: Path, design: str = "grid", scale: str = "linear") -> Path:
    """A summary.csv with known outputs: 2 scenarios x 2 points x 3 replicates,
    plus one failed and one pending run."""
    folder.mkdir(parents=True)
    if design == "grid":
        param = f'[[parameters]]\nkey = "{KILL}"\nvalues = [0.001, 0.01]\nscale = "{scale}"\n'
    else:
        param = f'[[parameters]]\nkey = "{KILL}"\nlow = 0.001\nhigh = 0.1\nscale = "{scale}"\n'
    (folder / "sweep.toml").write_text(
        f'name = "hand"\nscenarios = ["a.toml", "b.toml"]\nreplicates = 3\n'
        f'[design]\nkind = "{design}"\nsamples = 2\n{param}'
    )
    outputs = list(sweep_module.OUTPUTS)
    columns = ["run_id", "scenario", "point", "replicate", "seed", KILL, "status",
               *outputs, "wall_s", "error", "file"]
    rows = []
    for s, scenario in enumerate(("a", "b")):
        for point, kill in enumerate((0.001, 0.01) if design == "grid" else (0.002, 0.05)):
            for r in range(3):
                values = {o: 100.0 * (s + 1) + 10 * point + r for o in outputs}
                rows.append({"run_id": f"{scenario}-p{point}-r{r}", "scenario": scenario,
                             "point": point, "replicate": r, "seed": r, KILL: kill,
                             "status": "ok", **values, "wall_s": 1.0, "error": "", "file": ""})
    rows.append({**rows[0], "run_id": "a-p0-r3", "replicate": 3, "status": "failed",
                 **dict.fromkeys(outputs, ""), "error": "RuntimeError: boom"})
    rows.append({**rows[0], "run_id": "a-p0-r4", "replicate": 4, "status": "pending",
                 **dict.fromkeys(outputs, "")})
    with (folder / "summary.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=columns)
        w.writeheader()
        w.writerows(rows)
    return folder


def png(path: Path) -> np.ndarray:
    assert path.is_file() and path.stat().st_size > 1000, path
    with Image.open(path) as im:
        assert im.format == "PNG"
        return np.asarray(im.convert("RGB"))


def colour_pixels(image: np.ndarray, colour: str) -> int:
    rgb = np.round(np.array(to_rgb(colour)) * 255).astype(int)
    return int(np.all(np.abs(image.astype(int) - rgb) <= 1, axis=-1).sum())


def attrs(path: Path) -> tuple[list[str], list[str]]:
    with h5py.File(path, "r") as f:
        colours = str(f.attrs["cell_type_colours"]).split()
        names = [n for c, n in cell_type_labels(f["lattice/cell_type"]).items() if c >= 0]
    return colours, names


def px(inches: float) -> int:
    return round(inches * plots.DPI)


# ------------------------------------------------------------------ run files


def test_plot_cli_writes_every_figure_of_a_run(run_file, tmp_path, capsys):
    out = tmp_path / "figs"
    assert main(["plot", str(run_file), "--out", str(out)]) == 0
    names = ["counts.png", "stat3.png", "lattice.png", "field_il6.png", "field_chemokine.png"]
    assert plots.run_plot_names(run_file) == names
    assert sorted(p.name for p in out.iterdir()) == sorted(names)  # no temporary files left
    printed = capsys.readouterr().out
    for name in names:
        assert str(out / name) in printed
    assert png(out / "counts.png").shape == (px(5.0), px(9.0), 3)
    # default: first, middle, last snapshot -> three panels side by side
    assert png(out / "lattice.png").shape == (px(4.6), px(3.9 * 3 + 2.8), 3)
    assert png(out / "field_il6.png").shape == (px(4.4), px(3.9 * 3 + 1.2), 3)
    assert png(out / "stat3.png").shape == (px(2.6 * 3 + 1.0), px(6.0), 3)


def test_default_folder_is_beside_the_run(run_file, tmp_path):
    run = tmp_path / "copy.h5"
    run.write_bytes(run_file.read_bytes())
    assert main(["plot", str(run)]) == 0
    assert (tmp_path / "copy_plots" / "lattice.png").is_file()


def test_lattice_pixels_are_the_cell_type_colours(run_file, tmp_path):
    colours, names = attrs(run_file)
    with h5py.File(run_file) as f:
        first = f["lattice/cell_type"][0]
    counts = {n: int((first == k).sum()) for k, n in enumerate(names)}
    assert counts["tumour"] > 50 and counts["cd8"] > 20 and counts["cd8_exhausted"] == 0
    (path,) = [p for p in plots.plot_run(run_file, tmp_path, days=[0]) if p.name == "lattice.png"]
    image = png(path)
    assert image.shape[1] == px(3.9 + 2.8)  # one panel
    seen = {n: colour_pixels(image, c) for n, c in zip(names, colours, strict=True)}
    # each site is a square of the same size, so pixels per type follow the counts;
    # a type with no site shows only as its small legend patch
    ratio = seen["tumour"] / seen["cd8"]
    assert ratio == pytest.approx(counts["tumour"] / counts["cd8"], rel=0.25)
    assert seen["cd8"] > 20 * counts["cd8"]
    assert seen["cd8_exhausted"] < 0.1 * seen["cd8"]


def test_days_pick_the_nearest_snapshots(run_file, tmp_path, capsys):
    out = tmp_path / "d"
    # 0.09 d -> 120 min (0.083 d), 0.2 d -> 240 min, 9 d -> the last (360 min)
    assert main(["plot", str(run_file), "--out", str(out), "--days", "0.09", "0.2", "9"]) == 0
    assert "day 9 is after the last snapshot (day 0.25)" in capsys.readouterr().err
    assert png(out / "lattice.png").shape[1] == px(3.9 * 3 + 2.8)
    info = plots._run_info(run_file)
    picks = plots._pick_snapshots(info, [0.09, 0.2, 9.0], log=lambda _: None)
    assert [p.index for p in picks] == [1, 2, 3]
    assert "day 0.08 (snapshot 2/4)" in picks[0].title()
    assert "nearest to requested day 0.09" in picks[0].title()
    assert "requested" not in plots._pick_snapshots(info, [0.25], log=None)[0].title()


def test_run_without_cells_or_fields_skips_stat3_with_a_note(no_cells_run, tmp_path):
    notes: list[str] = []
    written = plots.plot_run(no_cells_run, tmp_path, log=notes.append)
    assert [p.name for p in written] == ["counts.png", "lattice.png"]
    assert not (tmp_path / "stat3.png").exists()
    assert len(notes) == 1 and "output.cells = false" in notes[0]
    # a movie of the lattice alone, in a narrower frame
    movie = plots.write_movie(no_cells_run, tmp_path / "m.gif", progress=False)
    with Image.open(movie) as im:
        assert im.size == (720, 640) and im.n_frames == 4
    assert main(["movie", str(no_cells_run), "--field", "il6", "--out",
                 str(tmp_path / "x.mp4")]) == 2


def test_3d_run_draws_the_middle_slice(run_3d, tmp_path):
    info = plots._run_info(run_3d)
    assert info.shape == (7, 40, 40) and info.z_slice == 3
    assert info.slice_note == "middle z slice (3 of 0..6)"
    written = plots.plot_run(run_3d, tmp_path, days=[0])
    image = png(tmp_path / "lattice.png")
    colours, names = attrs(run_3d)
    with h5py.File(run_3d) as f:
        middle = f["lattice/cell_type"][0, 3]
    tumour = int((middle == names.index("tumour")).sum())
    assert tumour > 20
    assert colour_pixels(image, colours[names.index("tumour")]) > 20 * tumour
    assert len(written) == 5


def test_partial_run_file(tmp_path):
    path = partial_run_file(tmp_path, snapshots=2, steps_between=3)
    assert path.name == "cut.h5.partial"
    assert main(["plot", str(path)]) == 0
    assert (tmp_path / "cut_plots" / "lattice.png").is_file()
    assert plots._run_info(path).title == "tiny (cut.h5.partial, partial run (2 snapshots))"
    assert main(["movie", str(path), "--out", str(tmp_path / "cut.gif"), "--quiet"]) == 0
    with Image.open(tmp_path / "cut.gif") as im:
        assert im.n_frames == 2


# ------------------------------------------------------------------ movies


def test_mp4_has_one_frame_per_snapshot(run_file, tmp_path):
    out = tmp_path / "m.mp4"
    assert main(["movie", str(run_file), "--out", str(out), "--field", "chemokine",
                 "--fps", "5", "--quiet"]) == 0
    n_frames, seconds = imageio_ffmpeg.count_frames_and_secs(str(out))
    assert n_frames == 4 and seconds == pytest.approx(4 / 5, abs=0.05)
    reader = imageio_ffmpeg.read_frames(str(out))
    meta = next(reader)
    assert meta["size"] == (1280, 640)
    frames = [np.frombuffer(f, np.uint8).reshape(640, 1280, 3) for f in reader]
    assert len(frames) == 4
    assert not np.array_equal(frames[0], frames[-1])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.mp4"]  # temporary file renamed


def test_gif_has_one_frame_per_snapshot_and_the_default_mp4(run_file, tmp_path):
    run = tmp_path / "r.h5"
    run.write_bytes(run_file.read_bytes())
    path = plots.write_movie(run, tmp_path / "r.gif", fps=4, dpi=50, progress=False)
    with Image.open(path) as im:
        assert im.n_frames == 4 and im.size == (640, 320)
        assert im.info["duration"] == 250 and im.info["loop"] == 0
        im.seek(0)
        first = np.asarray(im.convert("RGB"))
    colours, names = attrs(run)
    tumour = np.round(np.array(to_rgb(colours[names.index("tumour")])) * 255)
    near = np.all(np.abs(first.astype(int) - tumour) <= 6, axis=-1).sum()
    assert near > 200  # the tumour disc, in its colour, survives the GIF palette
    assert main(["movie", str(run), "--quiet"]) == 0  # default: r.mp4 beside the run
    assert imageio_ffmpeg.count_frames_and_secs(str(tmp_path / "r.mp4"))[0] == 4


def test_movie_colour_scale_is_fixed_over_the_movie():
    planes = [np.zeros((10, 10)), np.full((10, 10), 2.0), np.arange(100.0).reshape(10, 10)]
    top = plots._robust_max(iter(planes), 100.0)
    assert top == 99.0
    assert plots._robust_max(iter([np.zeros((3, 3))]), 99.5) == pytest.approx(1e-9)


# ------------------------------------------------------------------ sweeps


def test_mean_ci_is_mean_plus_minus_t_s_over_sqrt_n():
    values = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]
    mean, half, n = plots.mean_ci(values)
    s = math.sqrt(sum((v - 5.0) ** 2 for v in values) / 7)  # sample sd, 2.138
    assert n == 8 and mean == 5.0
    assert half == pytest.approx(2.3646242510 * s / math.sqrt(8), rel=1e-9)  # t(0.975, 7)
    assert half == pytest.approx(1.78748, rel=1e-5)
    mean, half, n = plots.mean_ci([1.0, 3.0, float("nan")], level=0.9)
    assert (mean, n) == (2.0, 2)
    assert half == pytest.approx(6.313751515 * math.sqrt(2) / math.sqrt(2), rel=1e-9)
    assert math.isnan(plots.mean_ci([4.0])[1]) and plots.mean_ci([4.0])[0] == 4.0
    assert plots.mean_ci([])[2] == 0


def test_plot_real_sweep(real_sweep, capsys):
    assert main(["plot", str(real_sweep)]) == 0
    out = real_sweep / "plots"
    names = ["outputs_by_scenario.png", "timecourses_by_scenario.png", f"outputs_vs_{KILL}.png"]
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    printed = capsys.readouterr().out
    for name in names:
        assert png(out / name).shape[0] > 300
        assert str(out / name) in printed


def test_plot_sweep_skips_failed_and_pending_and_plots_known_means(tmp_path, monkeypatch):
    folder = hand_sweep(tmp_path / "hand")
    notes: list[str] = []
    written = plots.plot_sweep(folder, tmp_path / "p", log=notes.append)
    assert [p.name for p in written] == ["outputs_by_scenario.png", f"outputs_vs_{KILL}.png"]
    assert notes == [f"{folder}: 2 of 14 runs skipped (1 failed, 1 pending)"]
    plan = plots._sweep_plan(folder, log=lambda _: None)
    assert len(plan.done) == 12 and plan.kind == "grid"
    fig = plots._compare_figure(plan)
    assert "2 of 14 runs skipped" in fig.get_suptitle()
    ax = fig.axes[0]
    assert ax.get_title() == sweep_module.OUTPUTS[0]
    # scenario a, point 0: replicates 100, 101, 102 -> mean 101, CI t(0.975, 2) * 1 / sqrt(3)
    lines = [c for c in ax.containers]
    means = sorted(float(c.lines[0].get_ydata()[0]) for c in lines)
    assert means == [101.0, 111.0, 201.0, 211.0]
    bar = lines[0].lines[2][0].get_segments()[0]
    assert bar[1][1] - bar[0][1] == pytest.approx(2 * 4.302652730 / math.sqrt(3), rel=1e-6)
    # a grid spanning a factor of 10 is drawn on a log axis
    assert plots._param_figure(plan, plan.params[0]).axes[0].get_xscale() == "log"


def test_sweep_outputs_are_read_at_run_time(tmp_path, monkeypatch):
    folder = hand_sweep(tmp_path / "hand")
    with (folder / "summary.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        r["extra_metric"] = "1.5"
    with (folder / "summary.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    monkeypatch.setattr(sweep_module, "OUTPUTS", (*sweep_module.OUTPUTS, "extra_metric",
                                                  "not_in_table"))
    plan = plots._sweep_plan(folder, log=lambda _: None)
    assert plan.outputs[-1] == "extra_metric"
    titles = [a.get_title() for a in plots._compare_figure(plan).axes if a.get_visible()]
    assert titles == [*sweep_module.OUTPUTS[:-1]]


def test_sampled_design_scatter_with_log_scale(tmp_path):
    folder = hand_sweep(tmp_path / "lhs", design="lhs", scale="log")
    plan = plots._sweep_plan(folder, log=lambda _: None)
    assert plan.kind == "lhs" and plan.params[0].scale == "log"
    fig = plots._param_figure(plan, plan.params[0])
    assert fig.axes[0].get_xscale() == "log"
    assert len(fig.axes[0].collections) == 2  # one scatter per scenario, no CI lines
    linear = plots._sweep_plan(hand_sweep(tmp_path / "lin", design="lhs"), log=lambda _: None)
    assert plots._param_figure(linear, linear.params[0]).axes[0].get_xscale() == "linear"
    assert len(plots.plot_sweep(folder, tmp_path / "out", log=lambda _: None)) == 2


# ------------------------------------------------------------------ bad input


def _bad_inputs(tmp: Path, run_file: Path) -> dict[str, tuple[list[str], str]]:
    (tmp / "text.h5").write_text("not hdf5")
    (tmp / "folder").mkdir()
    sweep = hand_sweep(tmp / "sweep")
    r, o = str(run_file), str(tmp / "out")
    return {
        "missing": (["plot", str(tmp / "nope.h5"), "--out", o], "no such run file"),
        "not hdf5": (["plot", str(tmp / "text.h5"), "--out", o], "not an HDF5 file"),
        "not a sweep": (["plot", str(tmp / "folder"), "--out", o], "without summary.csv"),
        "negative day": (["plot", r, "--out", o, "--days", "-1"], "finite and >= 0"),
        "nan day": (["plot", r, "--out", o, "--days", "nan"], "finite and >= 0"),
        "days on sweep": (["plot", str(sweep), "--out", o, "--days", "1"], "run files"),
        "unknown field": (["movie", r, "--out", o + ".mp4", "--field", "ifng"],
                          "--field 'ifng': no such field in tiny.h5 (fields saved: il6, "
                          "chemokine)"),
        "bad type": (["movie", r, "--out", o + ".avi"], "must end in .mp4 or .gif"),
        "bad fps": (["movie", r, "--out", o + ".mp4", "--fps", "0"], "--fps"),
        "movie missing": (["movie", str(tmp / "nope.h5"), "--out", o + ".mp4"], "no such"),
        "movie text": (["movie", str(tmp / "text.h5"), "--out", o + ".mp4"], "not an HDF5"),
    }


@pytest.mark.parametrize("case", ["missing", "not hdf5", "not a sweep", "negative day",
                                  "nan day", "days on sweep", "unknown field", "bad type",
                                  "bad fps", "movie missing", "movie text"])
def test_bad_input_exits_2_and_writes_nothing(case, run_file, tmp_path, capsys):
    argv, needle = _bad_inputs(tmp_path, run_file)[case]
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("tme-abm: error: "), err
    assert needle in err
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert not (tmp_path / "sweep" / "plots").exists()


def test_existing_outputs_need_force(run_file, tmp_path, capsys):
    out = tmp_path / "figs"
    assert main(["plot", str(run_file), "--out", str(out)]) == 0
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert main(["plot", str(run_file), "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamps
    assert main(["plot", str(run_file), "--out", str(out), "--force"]) == 0
    movie = tmp_path / "m.gif"
    movie.write_bytes(b"keep me")
    assert main(["movie", str(run_file), "--out", str(movie), "--quiet"]) == 2
    assert "m.gif already exists; use --force" in capsys.readouterr().err
    assert movie.read_bytes() == b"keep me"
    assert main(["movie", str(run_file), "--out", str(movie), "--quiet", "--force"]) == 0
    with Image.open(movie) as im:
        assert im.n_frames == 4
    sweep = hand_sweep(tmp_path / "sweep")
    assert main(["plot", str(sweep)]) == 0
    assert main(["plot", str(sweep)]) == 2
    assert main(["plot", str(sweep), "--force"]) == 0


def test_field_map_with_one_sparse_peak_is_not_black(run_file, tmp_path, monkeypatch):
    """One site a million times hotter than the rest: the colour scale is clipped
    at the 99.5th percentile (as in movies), so the gradient stays visible."""
    import shutil

    spiked = tmp_path / "spiked.h5"
    shutil.copyfile(run_file, spiked)
    with h5py.File(spiked, "r+") as f:
        name = "il6"
        ds = f["fields"][name]
        data = ds[...]
        peak = float(data.max()) * 1e6
        data[:, 3, 3] = peak
        ds[...] = data
        rest = data[:, 10:, 10:]
    figures = {}
    real_save = plots._save

    def capture(fig, path):
        if fig.axes[0].images:
            figures[Path(path).name] = (fig.axes[0].images[0].get_clim(),
                                        fig._suptitle.get_text())
        return real_save(fig, path)

    monkeypatch.setattr(plots, "_save", capture)
    plots.plot_run(spiked, tmp_path / "plots", log=lambda _: None)
    (lo, hi), title = figures[f"field_{name}.png"]
    assert lo == 0.0
    assert hi < peak / 1e3  # not the spike: the scale is set by the field itself
    assert hi >= np.percentile(rest, 50)
    assert "clipped at the 99.5th percentile" in title
