"""A/A calibration: how often each test rejects when both buckets get identical traffic.

Procedure of GrowthBook's ``gbstats/devtools/simulation.py`` and Kohavi et al. ch. 19
(ABTEST_STATS.md §4.1): simulate many A/A experiments, run every test exactly as the report does,
and compare the share of p < α with α (binomial CI), plus the p-value histogram / QQ plot.

Traffic comes from any callable ``traffic(n_users, rng) -> (impressions, clicks)`` (the
``Traffic`` protocol); the world's own traffic (``abtest.simulator.aa_world``) re-buckets a fixed
population per run instead and feeds its per-bucket statistics to ``evaluate_runs`` directly. The default
``ClusteredTraffic`` draws users with heterogeneous CTR (Beta) and heavy-tailed impression counts;
all runs are drawn as numpy arrays at once (in chunks), no per-user Python loop.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from scipy import stats as _sps

from abtest.stats import inference, sequential
from abtest.stats.sufficient import SufficientStats

#: The delta-method false-positive rate must lie in α ± this (issue 7).
CALIBRATION_TOLERANCE = 0.015


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

    def __call__(self, n_users: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        theta = rng.beta(self.ctr_a, self.ctr_b, size=n_users)
        if self.impressions == "geometric":
            m = rng.geometric(1.0 / self.mean_impressions, size=n_users)
        else:
            sigma = self.lognormal_sigma
            mu = math.log(self.mean_impressions - 1.0) - sigma**2 / 2.0
            m = 1 + rng.poisson(np.exp(rng.normal(mu, sigma, size=n_users)))
        return m, rng.binomial(m, theta)


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
            ks = float(_sps.kstest(p, "uniform").pvalue) if name in ("delta", "naive") else None
            tests[name] = {"false_positive_rate": rate, "ci_low": low, "ci_high": high, "ks_uniform_p": ks}
        deff = float(np.mean(self.design_effect))
        delta_rate = tests["delta"]["false_positive_rate"]
        return {
            "runs": self.runs, "users_per_bucket": self.users_per_bucket, "alpha": self.alpha, "seed": self.seed,
            "traffic": self.traffic, "tests": tests,
            "lift_ci_coverage": float(np.mean(self.lift_ci_covers_zero)),
            "mean_design_effect": deff,
            # What the naive test should reject if its SE is too small by √DEff (ABTEST_STATS.md §2.2).
            "naive_rate_predicted_by_design_effect": float(2 * _sps.norm.sf(_sps.norm.isf(self.alpha / 2) / math.sqrt(deff))),
            "delta_band": [self.alpha - CALIBRATION_TOLERANCE, self.alpha + CALIBRATION_TOLERANCE],
            "delta_within_band": bool(abs(delta_rate - self.alpha) <= CALIBRATION_TOLERANCE),
        }


def _peek_stats(m: np.ndarray, c: np.ndarray, peeks: int) -> SufficientStats:
    """Statistics of the first j·n/peeks users (j = 1..peeks) of arrays [runs, n] -> fields [runs, peeks]."""
    n = m.shape[-1]
    ends = np.array([n * j // peeks for j in range(1, peeks + 1)])
    m = m.astype(np.float64)
    c = c.astype(np.float64)
    sums = [np.cumsum(x, axis=-1)[..., ends - 1] for x in (c, m, c * c, m * m, c * m)]
    return SufficientStats(ends, *sums)


def run_aa(runs: int = 1000, users_per_bucket: int = 2000, traffic: Traffic | None = None, seed: int = 0,
           alpha: float = 0.05, chunk_runs: int = 250, peeks: int = 0) -> AAResult:
    """Simulate ``runs`` A/A experiments and test each with the delta-method and naive tests.

    Args:
        traffic: per-user generator; both buckets of every run are drawn from it.
        peeks: when > 1, also read each run ``peeks`` times as users arrive (after 1/peeks, 2/peeks,
            … of them) and reject if any look has p < α: ``delta_peeking`` (fixed-horizon test read
            repeatedly, inflated) vs ``sequential_peeking`` (the confidence sequence, stays ≤ α).
        chunk_runs: runs drawn per numpy batch (memory: about 2·chunk_runs·users_per_bucket·40 bytes).
            Part of the random stream: keep it fixed to reproduce a seed.
    """
    if runs < 1 or users_per_bucket < 2:
        raise ValueError("need runs >= 1 and users_per_bucket >= 2")
    traffic = traffic or ClusteredTraffic()
    rng = np.random.default_rng(seed)
    parts = []
    for start in range(0, runs, chunk_runs):
        k = min(chunk_runs, runs - start)
        m, c = traffic(k * 2 * users_per_bucket, rng)
        m = np.asarray(m).reshape(k, 2, users_per_bucket)
        c = np.asarray(c).reshape(k, 2, users_per_bucket)
        a = SufficientStats.from_arrays(m[:, 0], c[:, 0])
        b = SufficientStats.from_arrays(m[:, 1], c[:, 1])
        peek_a = peek_b = None
        if peeks > 1:
            peek_a, peek_b = _peek_stats(m[:, 0], c[:, 0], peeks), _peek_stats(m[:, 1], c[:, 1], peeks)
        parts.append(evaluate_runs(a, b, alpha, peek_a, peek_b))
    description = asdict(traffic) if hasattr(traffic, "__dataclass_fields__") else {"name": repr(traffic)}
    if peeks > 1:
        description = {**description, "peeks": peeks}
    return result_from_tests(parts, users_per_bucket=users_per_bucket, alpha=alpha, seed=seed,
                             traffic=description)


def evaluate_runs(a: SufficientStats, b: SufficientStats, alpha: float,
              peek_a: SufficientStats | None = None, peek_b: SufficientStats | None = None) -> dict:
    """Every test of the report on A/A runs given as per-bucket statistics with fields [runs].

    ``peek_a``/``peek_b`` (fields [runs, looks]) are the cumulative statistics at each look of a
    peeking analysis; a run rejects under peeking if any look has p < α.
    """
    low, high = inference.lift_confint(a, b, alpha)
    out = {
        "delta": inference.delta_method_test(a, b).p_value,
        "naive": inference.naive_ztest(a, b).p_value,
        "sequential": sequential.sequential_p_value(inference.relative_lift(a, b), inference.lift_se(a, b),
                                                    a.n + b.n, alpha),
        "_covers": (low <= 0) & (0 <= high),
        "_deff": inference.design_effect(a, b),
    }
    if peek_a is not None:
        out["delta_peeking"] = inference.delta_method_test(peek_a, peek_b).p_value.min(axis=-1)
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
                    lift_ci_covers_zero=joined["_covers"], design_effect=joined["_deff"])


def plot_p_values(result: AAResult, path: Path) -> Path:
    """Histogram and QQ plot (vs Uniform(0, 1)) of each test's p-values, one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (hist, qq) = plt.subplots(1, 2, figsize=(10, 4))
    bins = np.linspace(0, 1, 21)
    uniform = np.arange(1, result.runs + 1) / (result.runs + 1)
    for name, colour in (("delta", "tab:blue"), ("naive", "tab:red")):  # sequential p is mostly 1
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
    lines += [
        "",
        f"Delta-method rate {'within' if summary['delta_within_band'] else 'OUTSIDE'} the band "
        f"[{100 * low:.1f} %, {100 * high:.1f} %].",
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
