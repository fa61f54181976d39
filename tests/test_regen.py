"""REGv1 (lpqlc.regen): model, equilibria, the seed's CSVs, calibration on a synthetic truth, Sobol."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lpqlc.config.science import RegV1Config
from lpqlc.errors import LpqlcError
from lpqlc.regen.calibrate import calibrate
from lpqlc.regen.equilibria import bifurcation, equilibria, v_crit
from lpqlc.regen.model import jacobian, rhs, simulate
from lpqlc.regen.observations import COLUMNS, example_path, read_observations, read_validation_sites
from lpqlc.regen.params import RegenParams
from lpqlc.regen.sensitivity import sobol_indices

CFG = RegV1Config()
REGIONS = ("LoessPlateau", "ChihuahuanDesert")


# ------------------------------------------------------------------------------------------- model
def test_simulate_keeps_the_physical_box_and_agrees_across_stiff_methods() -> None:
    p = RegenParams.from_config(CFG, K_V=1.6)  # a carrying capacity above 1: V must still stop at 1
    t = np.arange(0.0, 80.0)
    rain = (t, 450 + 150 * np.sin(t / 4))
    a = simulate(p, t, (0.2, 0.5, 0.1), rain, method="LSODA", rtol=1e-8, atol=1e-10)
    b = simulate(p, t, (0.2, 0.5, 0.1), rain, method="Radau", rtol=1e-8, atol=1e-10)
    assert set(a.data_vars) >= {"V", "SOM", "theta", "runoff", "rainfall"}
    assert float(a.V.min()) >= 0 and float(a.V.max()) <= 1 and float(a.V[-1]) > 0.99
    assert float(a.theta.min()) >= 0 and float(a.theta.max()) <= p.porosity
    assert np.allclose(a.V, b.V, atol=1e-5) and np.allclose(a.SOM, b.SOM, atol=1e-5)
    assert np.all(a.runoff >= 0) and np.all(a.runoff <= a.rainfall)
    with pytest.raises(LpqlcError, match="strictly increasing"):
        simulate(p, [0.0, 0.0, 1.0], (0.2, 0.5, 0.1), 450.0)


# -------------------------------------------------------------------------------------- equilibria
@pytest.mark.parametrize("region", REGIONS)
@pytest.mark.parametrize("rainfall", [150.0, 450.0, 900.0])
def test_equilibria_are_roots_and_jacobian_matches_finite_differences(region: str, rainfall: float) -> None:
    p = RegenParams.from_config(CFG, region)
    rain = lambda t: rainfall  # noqa: E731
    eqs = equilibria(p, rainfall)
    assert eqs
    for e in eqs:
        y = np.array([e.V, e.SOM, e.theta])
        assert np.max(np.abs(rhs(0.0, y, p, rain))) <= 1e-8
        if e.boundary:
            continue
        h = 1e-6
        cols = []
        for d in np.eye(3):
            if y @ d < 2 * h:  # one-sided at the walls V = 0, SOM = 0 (the clip cuts the negative side)
                f0, f1, f2 = (rhs(0.0, y + i * h * d, p, rain) for i in range(3))
                cols.append((-3 * f0 + 4 * f1 - f2) / (2 * h))  # second order, one-sided
            else:
                cols.append((rhs(0.0, y + h * d, p, rain) - rhs(0.0, y - h * d, p, rain)) / (2 * h))
        fd = np.column_stack(cols)
        assert np.allclose(jacobian(0.0, y, p, rain), fd, rtol=1e-5, atol=1e-7)
        ev = np.sort_complex(np.linalg.eigvals(fd))
        assert np.allclose(np.sort_complex(np.array(e.eigenvalues)), ev, rtol=1e-4, atol=1e-6)
        assert e.stable == bool(np.all(ev.real < 0))


def test_v_crit_separates_the_basins_and_falls_with_rainfall() -> None:
    p = RegenParams.from_config(CFG)
    vc = v_crit(p, 450.0)
    assert 0 < vc < 1
    eqs = equilibria(p, 450.0)
    som, th = next((e.SOM, e.theta) for e in eqs if abs(e.V - vc) < 1e-9)
    t = np.arange(0.0, 400.0, 5.0)
    above = simulate(p, t, (vc + 0.02, som, th), 450.0)
    below = simulate(p, t, (vc - 0.02, som, th), 450.0)
    assert float(above.V[-1]) > 0.9 and float(below.V[-1]) < 0.05
    bif = bifurcation(p, (150.0, 650.0, 6))
    assert bif.bistable is not None and bif.bistable[0] == 150.0
    vcs = bif.v_crit.dropna()
    assert len(vcs) >= 3 and np.all(np.diff(vcs.to_numpy()) < 0)


# --------------------------------------------------------------------------------------------- CSV
def test_seed_csvs_parse_with_missing_cells_as_missing() -> None:
    lp = read_observations(example_path("loess_plateau_1995_2010.csv"))
    assert list(lp.columns) == list(COLUMNS) and lp["year"].tolist() == [1995, 2000, 2005, 2010]
    assert lp["SOM_%"].isna().all() and lp["erosion_t/ha"].isna().all()
    assert lp["veg_cover_%"].tolist() == [28, 31, 45, 55] and lp["runoff_mm"].tolist() == [90, 84, 70, 58]
    jo = read_observations(example_path("johnson_soil_carbon.csv"))
    assert jo["SOM_%"].tolist() == [0.4, 0.7, 1.0] and jo["runoff_mm"].isna().all()
    sites = read_validation_sites(example_path("validation_sites.csv"))
    assert sites["V_crit_est_%_lo"].tolist() == [35, 35] and sites["theta_star_est_hi"].tolist() == [
        0.18,
        0.18,
    ]


def test_bad_csv_errors_name_file_line_and_column(tmp_path: Path) -> None:
    header = ",".join(COLUMNS)
    wrong = tmp_path / "wrong.csv"
    wrong.write_text(header.replace("SOM_%", "SOM") + "\n2000,a,30,,400,,\n")
    with pytest.raises(LpqlcError, match=r"wrong\.csv, line 1: wrong header.*missing \['SOM_%'\]"):
        read_observations(str(wrong))
    bad = tmp_path / "bad.csv"
    bad.write_text(header + "\n2000,a,30,,400,,\n2001,a,31,,4OO,,\n")
    with pytest.raises(LpqlcError, match=r"bad\.csv, line 3, column 'rainfall_mm': '4OO' is not a number"):
        read_observations(str(bad))
    cover = tmp_path / "cover.csv"
    cover.write_text(header + "\n2000,a,130,,400,,\n")
    with pytest.raises(LpqlcError, match=r"cover\.csv, line 2, column 'veg_cover_%'"):
        read_observations(str(cover))


# ------------------------------------------------------------------------------------- calibration
def test_calibration_recovers_a_synthetic_truth() -> None:
    """5 % noise on 50 years of V, SOM and runoff; calibrated from the priors' centre: every parameter the
    calibration calls identifiable has its true value inside its 95 % CI, and R² ≥ 0.7 on V and SOM."""
    true = RegenParams.from_config(
        CFG, r_V=0.19, K_V=0.65, a1=0.12, a2=0.045, lambda1=0.6, lambda2=0.04, eta1=6.0
    )
    years = np.arange(1971.0, 2021.0)
    rain = 450 + 60 * np.sin(years / 3.0)
    ds = simulate(true, years, (0.25, 0.1, 0.1), (years, rain))
    rng = np.random.default_rng(1)

    def noisy(x: np.ndarray) -> np.ndarray:
        return x * (1 + 0.05 * rng.standard_normal(x.size))

    df = pd.DataFrame(
        {"year": years.astype(int), "location": "synthetic", "veg_cover_%": 100 * noisy(ds.V.values),
         "SOM_%": noisy(ds.SOM.values), "rainfall_mm": rain, "runoff_mm": noisy(ds.runoff.values),
         "erosion_t/ha": np.nan}
    )  # fmt: skip
    cal = calibrate(df, CFG, n_bootstrap=12, holdout_years=5, seed=0)
    assert cal.holdout_years == [2016, 2017, 2018, 2019, 2020]
    identified = [n for n in cal.names if cal.identifiable[n]]
    assert {"a1", "a2"} <= set(identified)  # the SOM pair is what 50 years of SOM pin down
    for i, n in enumerate(cal.names):
        if cal.identifiable[n]:
            assert cal.ci95[i, 0] <= getattr(true, n) <= cal.ci95[i, 1], n
        else:
            assert cal.notes[n]  # an unidentified parameter always says why
    assert cal.metrics["r2_V"] >= 0.7 and cal.metrics["r2_SOM"] >= 0.7
    assert cal.metrics["holdout_rel_rmse_V"] <= CFG.target_holdout_rmse
    corr = cal.correlation
    assert np.allclose(corr, corr.T, equal_nan=True) and np.allclose(np.diag(corr), 1.0)
    assert np.all(cal.vif[np.isfinite(cal.vif)] >= 1.0 - 1e-9)


# ----------------------------------------------------------------------------------------- Sobol
def test_sobol_indices_in_unit_interval_and_reproducible() -> None:
    a = sobol_indices(CFG, outputs=("V", "SOM"), n=32, seed=5, horizon=20.0)
    b = sobol_indices(CFG, outputs=("V", "SOM"), n=32, seed=5, horizon=20.0)
    c = sobol_indices(CFG, outputs=("V", "SOM"), n=32, seed=6, horizon=20.0)
    assert a["n_runs"] == 32 * (9 + 2)
    for out in ("V", "SOM"):
        for key in ("S1", "ST"):
            v, conf = np.array(a[out][key]), np.array(a[out][f"{key}_conf"])
            assert np.all(v >= -conf - 0.05) and np.all(v <= 1 + conf + 0.05), (out, key)
        assert a[out] == b[out]
        assert a[out]["ST"] != c[out]["ST"]
    # SOM at the horizon cannot depend on eta1 more than on its own input rate a1
    assert a["SOM"]["ST"][a["names"].index("a1")] > a["SOM"]["ST"][a["names"].index("eta1")]


def test_simulate_switches_at_the_wall_between_output_times() -> None:
    """V reaches the wall V = 1 between sparse output years and leaves it when the rain stops: every
    output year is filled, and LSODA agrees with Radau."""
    p = RegenParams.from_config(CFG, K_V=3.0, r_V=0.2, lambda1=0.9, a1=0.08, a2=0.06)
    yr = np.arange(0.0, 91.0)
    rain = (yr, np.where(yr < 40, 1200.0, 0.0))
    t = np.array([0.0, 35.0, 36.0, 90.0])
    a = simulate(p, t, (0.9, 0.5, 0.1), rain)
    b = simulate(p, t, (0.9, 0.5, 0.1), rain, method="Radau")
    assert float(a.V[1]) == 1.0 and float(a.V[2]) == 1.0 and 0.05 < float(a.V[-1]) < 0.5
    assert np.allclose(a.V, b.V, atol=1e-4) and np.allclose(a.SOM, b.SOM, atol=1e-4)


def test_calibrate_rejects_unknown_parameters_and_variables() -> None:
    df = read_observations(example_path("loess_plateau_1995_2010.csv"))
    with pytest.raises(LpqlcError, match="variables must be"):
        calibrate(df, CFG, variables=("rain",))
    with pytest.raises(LpqlcError, match="parameters must be"):
        calibrate(df, CFG, parameters=("theta_star",))
    with pytest.raises(LpqlcError, match="no observations of SOM"):
        calibrate(df, CFG, variables=("SOM",), n_bootstrap=0)
