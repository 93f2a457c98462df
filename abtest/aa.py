"""A/A calibration: how often each test rejects when both buckets get identical traffic.

Procedure of GrowthBook's ``gbstats/devtools/simulation.py`` and Kohavi et al. ch. 19
(ABTEST_STATS.md §4.1): simulate many A/A experiments, run every test exactly as the report does,
and compare the share of p < α with α (binomial CI), plus the p-value histogram / QQ plot.

Traffic comes from any callable ``traffic(n_users, rng) -> (impressions, clicks)`` (the
``Traffic`` protocol); the world's own traffic (``abtest.simulator.aa_world``) re-buckets a fixed
population per run instead and feeds its per-bucket statistics to ``evaluate_runs`` directly. The default
``ClusteredTraffic`` draws users with heterogeneous CTR (Beta) and heavy-tailed impression counts;
all runs are drawn as numpy arrays at once (in chunks), no per-user Python loop. With
``cuped=True`` each user also gets a pre-period (``ClusteredTraffic.with_pre_period``: the same
CTR, fresh impressions) and the CUPED test is calibrated beside the others.

The p-value tested is the report's (``inference.lift_test``: the relative lift over its
delta-method SE, the statistic its CI comes from). The pass band is α ± 1 point; with fewer than
``MIN_RUNS_FOR_BAND`` runs a perfectly calibrated test would leave it by chance more than 1 % of
the time, so the summary says the band is not meaningful then.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from scipy import stats as _sps

from abtest.stats import cuped as _cuped
from abtest.stats import inference, sequential
from abtest.stats.sufficient import SufficientStats

#: The delta-method (and CUPED) false-positive rate must lie in α ± this.
CALIBRATION_TOLERANCE = 0.01


def runs_for_band(alpha: float = 0.05, tolerance: float = CALIBRATION_TOLERANCE, z: float = 2.5758) -> int:
    """Runs needed so that a test rejecting exactly α leaves α ± tolerance with probability
    < 1 % (z = z_{0.995}): runs ≥ z²·α(1 − α)/tolerance²."""
    return int(math.ceil(z * z * alpha * (1 - alpha) / tolerance**2))


MIN_RUNS_FOR_BAND = runs_for_band()  # 3,152 at α = 5 %, ± 1 point


class Traffic(Protocol):
    def __call__(self, n_users: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Per-user (impressions, clicks), each an int array [n_users]."""


@dataclass(frozen=True)
class ClusteredTraffic:
    """Users with CTR θ ~ Beta(ctr_a, ctr_b) and impressions with mean ``mean_impressions``.

    ``impressions="geometric"`` (support 1, 2, …) is the scenario of ABTEST_STATS.md §0 (Beta(2, 50),
    mean 20: naive FPR ≈ 13 %, design effect ≈ 1.72); ``"lognormal"`` gives a heavier tail:
    1 + Poisson(exp(N(μ, σ²))) with the same mean.
    """

    ctr_a: float = 2.0
    ctr_b: float = 50.0
    mean_impressions: float = 20.0
    impressions: str = "geometric"
    lognormal_sigma: float = 1.0

    def __post_init__(self):
        if self.impressions not in ("geometric", "lognormal"):
            raise ValueError(f"impressions must be 'geometric' or 'lognormal', not {self.impressions!r}")
        if self.mean_impressions <= 1 or self.ctr_a <= 0 or self.ctr_b <= 0:
            raise ValueError("need mean_impressions > 1 and positive Beta parameters")

    @property
    def intra_user_correlation(self) -> float:
        """ρ = 1/(a + b + 1) of the Beta-binomial."""
        return 1.0 / (self.ctr_a + self.ctr_b + 1.0)

    def _impressions(self, n_users: int, rng: np.random.Generator) -> np.ndarray:
        if self.impressions == "geometric":
            return rng.geometric(1.0 / self.mean_impressions, size=n_users)
        sigma = self.lognormal_sigma
        mu = math.log(self.mean_impressions - 1.0) - sigma**2 / 2.0
        return 1 + rng.poisson(np.exp(rng.normal(mu, sigma, size=n_users)))

    def __call__(self, n_users: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        theta = rng.beta(self.ctr_a, self.ctr_b, size=n_users)
        m = self._impressions(n_users, rng)
        return m, rng.binomial(m, theta)

    def with_pre_period(self, n_users: int, rng: np.random.Generator
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(impressions, clicks, pre_impressions, pre_clicks): the experiment period drawn as
        ``__call__`` draws it, then a pre-period of the same users — the same CTR θ (it is what
        persists), a fresh impression count."""
        theta = rng.beta(self.ctr_a, self.ctr_b, size=n_users)
        m = self._impressions(n_users, rng)
        c = rng.binomial(m, theta)
        m_pre = self._impressions(n_users, rng)
        return m, c, m_pre, rng.binomial(m_pre, theta)


@dataclass
class AAResult:
    """Per-run p-values of each test and the calibration summary."""

    runs: int
    users_per_bucket: int
    alpha: float
    seed: int
    traffic: dict
    p_values: dict[str, np.ndarray] = field(repr=False)
    lift_ci_covers_zero: np.ndarray = field(repr=False)
    design_effect: np.ndarray = field(repr=False)
    cuped_ci_covers_zero: np.ndarray | None = field(default=None, repr=False)
    cuped_variance_reduction: np.ndarray | None = field(default=None, repr=False)

    def false_positive_rate(self, test: str) -> tuple[float, float, float]:
        """(rate, low, high): share of p < α with its 95 % Clopper–Pearson interval."""
        rejections = int(np.sum(self.p_values[test] < self.alpha))
        ci = _sps.binomtest(rejections, self.runs).proportion_ci(0.95, method="exact")
        return rejections / self.runs, float(ci.low), float(ci.high)

    def summary(self) -> dict:
        tests = {}
        for name, p in self.p_values.items():
            rate, low, high = self.false_positive_rate(name)
            # Only fixed-horizon p-values should be Uniform(0, 1) under A/A.
            ks = float(_sps.kstest(p, "uniform").pvalue) if name in ("delta", "naive", "cuped") else None
            tests[name] = {"false_positive_rate": rate, "ci_low": low, "ci_high": high, "ks_uniform_p": ks}
        deff = float(np.mean(self.design_effect))
        within = {name: bool(abs(tests[name]["false_positive_rate"] - self.alpha) <= CALIBRATION_TOLERANCE)
                  for name in ("delta", "cuped") if name in tests}
        needed = runs_for_band(self.alpha)
        summary = {
            "runs": self.runs, "users_per_bucket": self.users_per_bucket, "alpha": self.alpha, "seed": self.seed,
            "traffic": self.traffic, "tests": tests,
            "lift_ci_coverage": float(np.mean(self.lift_ci_covers_zero)),
            "mean_design_effect": deff,
            # What the naive test should reject if its SE is too small by √DEff (ABTEST_STATS.md §2.2).
            "naive_rate_predicted_by_design_effect": float(2 * _sps.norm.sf(_sps.norm.isf(self.alpha / 2) / math.sqrt(deff))),
            "delta_band": [self.alpha - CALIBRATION_TOLERANCE, self.alpha + CALIBRATION_TOLERANCE],
            "delta_within_band": within["delta"],
            "runs_for_meaningful_band": needed,
            "band_meaningful": bool(self.runs >= needed),
        }
        if "cuped" in within:
            summary["cuped_within_band"] = within["cuped"]
            summary["cuped_lift_ci_coverage"] = float(np.mean(self.cuped_ci_covers_zero))
            summary["mean_cuped_variance_reduction"] = float(np.nanmean(self.cuped_variance_reduction))
        return summary

    @property
    def within_band(self) -> bool:
        """Every calibrated test (delta, and CUPED when run) inside α ± the tolerance."""
        s = self.summary()
        return s["delta_within_band"] and s.get("cuped_within_band", True)


def _stats_with_pre(m, c, m_pre, c_pre) -> SufficientStats:
    return SufficientStats.from_arrays(m, c, pre_impressions=m_pre, pre_clicks=c_pre)


def _peek_stats(m: np.ndarray, c: np.ndarray, peeks: int) -> SufficientStats:
    """Statistics of the first j·n/peeks users (j = 1..peeks) of arrays [runs, n] -> fields [runs, peeks]."""
    n = m.shape[-1]
    ends = np.array([n * j // peeks for j in range(1, peeks + 1)])
    m = m.astype(np.float64)
    c = c.astype(np.float64)
    sums = [np.cumsum(x, axis=-1)[..., ends - 1] for x in (c, m, c * c, m * m, c * m)]
    return SufficientStats(ends, *sums)


def run_aa(runs: int = 1000, users_per_bucket: int = 2000, traffic: Traffic | None = None, seed: int = 0,
           alpha: float = 0.05, chunk_runs: int = 250, peeks: int = 0, cuped: bool = False) -> AAResult:
    """Simulate ``runs`` A/A experiments and test each with the delta-method and naive tests.

    Args:
        traffic: per-user generator; both buckets of every run are drawn from it.
        cuped: also draw a pre-period (``traffic.with_pre_period``) and calibrate the CUPED test.
        peeks: when > 1, also read each run ``peeks`` times as users arrive (after 1/peeks, 2/peeks,
            … of them) and reject if any look has p < α: ``delta_peeking`` (fixed-horizon test read
            repeatedly, inflated) vs ``sequential_peeking`` (the confidence sequence, stays ≤ α).
        chunk_runs: runs drawn per numpy batch (memory: about 2·chunk_runs·users_per_bucket·40 bytes).
            Part of the random stream: keep it fixed to reproduce a seed.
    """
    if runs < 1 or users_per_bucket < 2:
        raise ValueError("need runs >= 1 and users_per_bucket >= 2")
    traffic = traffic or ClusteredTraffic()
    if cuped and not hasattr(traffic, "with_pre_period"):
        raise ValueError("cuped=True needs traffic with a with_pre_period(n_users, rng) method")
    rng = np.random.default_rng(seed)
    parts = []
    shape = (-1, 2, users_per_bucket)
    for start in range(0, runs, chunk_runs):
        k = min(chunk_runs, runs - start)
        if cuped:
            m, c, m_pre, c_pre = (np.asarray(x).reshape(shape) for x in
                                  traffic.with_pre_period(k * 2 * users_per_bucket, rng))
            a = _stats_with_pre(m[:, 0], c[:, 0], m_pre[:, 0], c_pre[:, 0])
            b = _stats_with_pre(m[:, 1], c[:, 1], m_pre[:, 1], c_pre[:, 1])
        else:
            m, c = traffic(k * 2 * users_per_bucket, rng)
            m, c = np.asarray(m).reshape(shape), np.asarray(c).reshape(shape)
            a = SufficientStats.from_arrays(m[:, 0], c[:, 0])
            b = SufficientStats.from_arrays(m[:, 1], c[:, 1])
        peek_a = peek_b = None
        if peeks > 1:
            peek_a, peek_b = _peek_stats(m[:, 0], c[:, 0], peeks), _peek_stats(m[:, 1], c[:, 1], peeks)
        parts.append(evaluate_runs(a, b, alpha, peek_a, peek_b))
    description = asdict(traffic) if hasattr(traffic, "__dataclass_fields__") else {"name": repr(traffic)}
    if peeks > 1:
        description = {**description, "peeks": peeks}
    if cuped:
        description = {**description, "pre_period": "same users' CTR, fresh impressions"}
    return result_from_tests(parts, users_per_bucket=users_per_bucket, alpha=alpha, seed=seed,
                             traffic=description)


def evaluate_runs(a: SufficientStats, b: SufficientStats, alpha: float,
              peek_a: SufficientStats | None = None, peek_b: SufficientStats | None = None) -> dict:
    """Every test of the report on A/A runs given as per-bucket statistics with fields [runs].

    ``delta`` is the report's p-value (``inference.lift_test``); ``cuped`` is added when the
    statistics carry a pre-period. ``peek_a``/``peek_b`` (fields [runs, looks]) are the cumulative
    statistics at each look of a peeking analysis; a run rejects under peeking if any look has p < α.
    """
    test = inference.lift_test(a, b, alpha)
    low, high = test.ci_low, test.ci_high
    out = {
        "delta": test.p_value,
        "naive": inference.naive_ztest(a, b).p_value,
        "sequential": sequential.sequential_p_value(inference.relative_lift(a, b), inference.lift_se(a, b),
                                                    a.n + b.n, alpha),
        "_covers": (low <= 0) & (0 <= high),
        "_deff": inference.design_effect(a, b),
    }
    if a.has_pre_period and b.has_pre_period:
        adjusted = _cuped.adjusted_lift(a, b, alpha)
        out["cuped"] = adjusted.p_value
        out["_cuped_covers"] = (adjusted.ci_low <= 0) & (0 <= adjusted.ci_high)
        out["_cuped_reduction"] = adjusted.variance_reduction
    if peek_a is not None:
        out["delta_peeking"] = inference.lift_test(peek_a, peek_b, alpha).p_value.min(axis=-1)
        p_look = sequential.sequential_p_value(inference.relative_lift(peek_a, peek_b),
                                               inference.lift_se(peek_a, peek_b), peek_a.n + peek_b.n, alpha)
        out["sequential_peeking"] = np.nan_to_num(p_look, nan=1.0).min(axis=-1)
    return out


def result_from_tests(parts: list[dict], users_per_bucket: int, alpha: float, seed: int,
                      traffic: dict) -> AAResult:
    """Concatenate the ``evaluate_runs`` outputs of successive chunks of runs into an ``AAResult``."""
    joined = {key: np.concatenate([np.atleast_1d(part[key]) for part in parts]) for key in parts[0]}
    p_values = {k: v for k, v in joined.items() if not k.startswith("_")}
    return AAResult(runs=joined["delta"].size, users_per_bucket=users_per_bucket, alpha=alpha, seed=seed,
                    traffic=traffic, p_values=p_values,
                    lift_ci_covers_zero=joined["_covers"], design_effect=joined["_deff"],
                    cuped_ci_covers_zero=joined.get("_cuped_covers"),
                    cuped_variance_reduction=joined.get("_cuped_reduction"))


def plot_p_values(result: AAResult, path: Path) -> Path:
    """Histogram and QQ plot (vs Uniform(0, 1)) of each test's p-values, one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (hist, qq) = plt.subplots(1, 2, figsize=(10, 4))
    bins = np.linspace(0, 1, 21)
    uniform = np.arange(1, result.runs + 1) / (result.runs + 1)
    for name, colour in (("delta", "tab:blue"), ("naive", "tab:red"), ("cuped", "tab:green")):
        if name not in result.p_values:  # (the sequential p is mostly 1: not drawn)
            continue
        p = result.p_values[name]
        hist.hist(p, bins=bins, histtype="step", linewidth=2, color=colour, label=f"{name} test")
        qq.plot(uniform, np.sort(p), color=colour, label=f"{name} test")
    hist.axhline(result.runs / 20, color="grey", linestyle=":", label="uniform")
    hist.set_xlabel("p-value")
    hist.set_ylabel("runs")
    hist.set_title(f"A/A p-values ({result.runs} runs)")
    hist.legend()
    qq.plot([0, 1], [0, 1], color="grey", linestyle=":")
    qq.set_xlabel("Uniform(0, 1) quantile")
    qq.set_ylabel("observed p-value")
    qq.set_title("QQ plot")
    qq.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90, metadata={"Software": None})
    plt.close(fig)
    return path


def summary_markdown(summary: dict) -> str:
    lines = [
        f"# A/A calibration: {summary['runs']} runs, {summary['users_per_bucket']} users per bucket, "
        f"α = {summary['alpha']}, seed {summary['seed']}",
        "",
        "| test | false-positive rate | 95 % CI | KS p (uniform) |",
        "|---|---|---|---|",
    ]
    for name, t in summary["tests"].items():
        lines.append(f"| {name} | {100 * t['false_positive_rate']:.2f} % | "
                     f"[{100 * t['ci_low']:.2f} %, {100 * t['ci_high']:.2f} %] | "
                     f"{'–' if t['ks_uniform_p'] is None else format(t['ks_uniform_p'], '.3g')} |")
    low, high = summary["delta_band"]
    band = f"[{100 * low:.1f} %, {100 * high:.1f} %]"
    lines += [
        "",
        f"Delta-method rate {'within' if summary['delta_within_band'] else 'OUTSIDE'} the band {band}"
        + ("" if "cuped_within_band" not in summary else
           f"; CUPED rate {'within' if summary['cuped_within_band'] else 'OUTSIDE'} it (mean variance "
           f"reduction {100 * summary['mean_cuped_variance_reduction']:.1f} %, CUPED CI coverage of 0 "
           f"{100 * summary['cuped_lift_ci_coverage']:.2f} %)") + ".",
        ("" if summary["band_meaningful"] else
         f"⚠ {summary['runs']} runs are too few for the band to mean much: a calibrated test leaves it "
         f"by chance more than 1 % of the time below {summary['runs_for_meaningful_band']:,} runs."),
        f"Mean design effect {summary['mean_design_effect']:.2f}: the naive test's SE is too small by "
        f"√DEff, predicting a naive rate of {100 * summary['naive_rate_predicted_by_design_effect']:.1f} %.",
        f"Lift CI (delta) coverage of 0: {100 * summary['lift_ci_coverage']:.2f} %.",
        "The sequential (always-valid) test is read once here, so it is conservative by design.",
        *_world_lines(summary),
        f"Traffic: {summary['traffic']}",
        "",
        "![p-values](aa_pvalues.png)",
        "",
    ]
    return "\n".join(lines)


def _world_lines(summary: dict) -> list[str]:
    t = summary["traffic"]
    if t.get("source") != "world":
        return []
    exposed = t["mean_exposed_users_per_bucket"]
    return [f"World traffic ({t.get('world', 'world')}): {t['n_users']} users, policy {t['policy']}, "
            f"{t['mean_displays_per_run']:,.0f} displays over {t['days']} days per run, "
            f"{exposed[0]:,.0f} / {exposed[1]:,.0f} exposed users per bucket (re-split by a fresh salt "
            f"every run), CTR {100 * t['expected_ctr']:.2f} %; the design effect above is the world's."]


def write_aa(result: AAResult, out_dir: str | Path) -> dict:
    """Write aa.json, aa.md and aa_pvalues.png into ``out_dir``; returns the summary."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = result.summary()
    (out_dir / "aa.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (out_dir / "aa.md").write_text(summary_markdown(summary), encoding="utf-8")
    plot_p_values(result, out_dir / "aa_pvalues.png")
    return summary
