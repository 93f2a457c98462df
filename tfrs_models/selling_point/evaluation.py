"""``adpush evaluate`` for the selling-point family: metrics.json, ROC plot, training curves.

Every figure is computed for the model, for the baseline trained on the same rows (logistic
regression with hashed crosses, ``baseline.py``) and, given the world's logs, for the oracle (the
world's true click probabilities joined on ``impression_id``) side by side — overall and per 001
Table 3 segment (per-user SF clicks ≤6/>6 × ad clicks ≤21/>21 on the train split). The
world's restricted oracles (``ceiling_popularity``, ``ceiling_query``, ``ceiling_profile``:
what a model with only popularity / +query / +profile could reach), which simulate-logs writes
beside the true probability, are scored the same way; logs written before they existed lack the
columns, and the evaluation says so (``ceilings_missing`` in metrics.json, and a warning).
"""
from __future__ import annotations

import json
import math
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from adpush_core.errors import UserError
from tfrs_models import metrics
from tfrs_models import run_dir as run_files
from tfrs_models.input import read_columns

SF, AD = "sf", "ad_click"


ORACLE_FILE = "oracle/sf_impressions.csv"
CEILING_PREFIX = "ceiling_"


def read_oracle(logs_dir, impression_ids) -> tuple[dict, str | None]:
    """``({"oracle": p_click, "ceiling_<name>": p, ...}, note)`` for these SF impressions, in
    their order, from ``<logs>/oracle/sf_impressions.csv`` (docs/contracts.md §1). ``note`` says
    why there are no ceilings when the file has no ``ceiling_*`` columns, else None."""
    import pandas as pd  # noqa: PLC0415

    path = Path(logs_dir) / ORACLE_FILE
    if not path.is_file():
        raise UserError(f"{path} does not exist (pass the simulate-logs output as --oracle)")
    frame = pd.read_csv(path, index_col="impression_id")
    if "p_click" not in frame.columns:
        raise UserError(f"{path} has no p_click column")
    ids = np.asarray(impression_ids, np.int64)
    missing = ids[~np.isin(ids, frame.index.to_numpy())]
    if missing.size:
        raise UserError(f"{missing.size} test impressions (e.g. {missing[:3].tolist()}) are "
                        f"missing from {path}")
    rows = frame.loc[ids]
    scores = {"oracle": rows["p_click"].to_numpy(np.float64)}
    scores.update({name: rows[name].to_numpy(np.float64) for name in rows.columns
                   if name.startswith(CEILING_PREFIX)})
    note = None
    if len(scores) == 1:
        note = (f"{path} has no {CEILING_PREFIX}* columns (written before simulate-logs wrote "
                "the restricted oracles): no ceilings scored; simulate the logs again into a "
                "new directory to get them")
    return scores, note


def _clean(value):
    """JSON-safe: NaN → None, numpy scalars → Python, int dict keys → strings."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return None if math.isnan(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def roc_curve(labels, scores):
    """``(fpr, tpr)`` arrays over all thresholds."""
    labels = np.asarray(labels).astype(bool)
    order = np.argsort(-np.asarray(scores), kind="stable")
    y = labels[order]
    tpr = np.concatenate([[0.0], np.cumsum(y) / max(1, y.sum())])
    fpr = np.concatenate([[0.0], np.cumsum(~y) / max(1, (~y).sum())])
    return fpr, tpr


def _plots(run_dir: Path, labels, scorers: dict, history: list) -> list[str]:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(5, 5))
    for name, scores in scorers.items():
        fpr, tpr = roc_curve(labels, scores)
        ax.plot(fpr, tpr, label=f"{name} (AUC {metrics.auc(labels, scores):.3f})")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="SF test ROC")
    ax.legend(loc="lower right")
    fig.savefig(run_dir / "roc.png", dpi=100)
    plt.close(fig)
    fig, (loss_ax, auc_ax) = plt.subplots(1, 2, figsize=(10, 4))
    x = np.arange(1, len(history) + 1)
    for key in sorted({k for r in history for k in r if k.startswith("train_loss_")}):
        loss_ax.plot(x, [r.get(key, np.nan) for r in history], marker="o", label=key[11:])
    loss_ax.set(xlabel="epoch (all phases)", ylabel="mean train loss", title="training loss")
    loss_ax.legend()
    auc_ax.plot(x, [r["valid_auc"] for r in history], marker="o")
    for i, r in enumerate(history):
        auc_ax.annotate(r["phase"][0], (x[i], r["valid_auc"]), fontsize=7)
    auc_ax.set(xlabel="epoch (p = pretrain, m = main)", ylabel="validation AUC",
               title="validation AUC (early-stopping metric)")
    fig.tight_layout()
    fig.savefig(run_dir / "training_curves.png", dpi=100)
    plt.close(fig)
    return ["roc.png", "training_curves.png"]


def table3_segments_of(spec, users, main_cut: int = 6, aux_cut: int = 21) -> np.ndarray:
    """001 Table 3 segment of each of ``users`` (e.g. the test rows' users), from their SF and
    ad clicks in the train split of ``spec``'s data."""
    train_sf = read_columns(spec, SF, "train", ["user_id", "clicked"])
    main_clicks = metrics.clicks_per_user(train_sf["user_id"], train_sf["clicked"])
    aux_clicks = {}
    if AD in spec.datasets:
        train_ad = read_columns(spec, AD, "train", ["user_id", "clicked"])
        aux_clicks = metrics.clicks_per_user(train_ad["user_id"], train_ad["clicked"])
    return metrics.table3_segments(users, main_clicks, aux_clicks, main_cut, aux_cut)


BASELINE_DIR = "baseline"  # RUN/baseline: the LR baseline's fit on the run's data, kept


def _baseline_key(spec) -> dict:
    """What the baseline's fit depends on: the data (its spec.json, hence its row counts and
    vocabularies) and the baseline's own settings."""
    import hashlib  # noqa: PLC0415

    from tfrs_models.selling_point.baseline import C_GRID, N_BITS, baseline_columns  # noqa: PLC0415

    spec_json = Path(spec.root) / "spec.json"
    return {"data_dir": str(Path(spec.root).resolve()),
            "spec_sha256": hashlib.sha256(spec_json.read_bytes()).hexdigest(),
            "columns": baseline_columns(spec), "c_grid": list(C_GRID), "n_bits": N_BITS}


def fit_baseline(run_dir, spec) -> dict:
    """Fit the LR baseline on ``spec``'s SF train split (C on valid), score its test split and
    keep both in ``RUN/baseline/`` (written to a temporary directory, then renamed, so a half
    written fit is never read). It needs no trained model: ``adpush run`` starts it beside the
    training (``adpush evaluate --baseline-only``) and the evaluation then reads it."""
    import shutil  # noqa: PLC0415
    import tempfile  # noqa: PLC0415

    from tfrs_models.selling_point.baseline import baseline_columns, fit_and_score  # noqa: PLC0415

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    for stale in run_dir.glob(f".{BASELINE_DIR}-*"):  # a fit killed while writing
        shutil.rmtree(stale, ignore_errors=True)
    test = read_columns(spec, SF, "test", baseline_columns(spec) + ["impression_id"])
    scores, summary = fit_and_score(spec, test)
    staging = Path(tempfile.mkdtemp(prefix=f".{BASELINE_DIR}-", dir=run_dir))
    np.savez(staging / "test_scores.npz", impression_id=test["impression_id"], prob=scores)
    record = {"key": _baseline_key(spec), "summary": summary}
    (staging / "baseline.json").write_text(json.dumps(_clean(record), indent=1))
    final = run_dir / BASELINE_DIR
    if final.exists():
        shutil.rmtree(final)
    staging.rename(final)
    return record


def kept_baseline(run_dir: Path, spec):
    """``(impression_ids, scores, summary)`` of ``RUN/baseline`` if it was fit on this data
    with these settings, else None."""
    folder = run_dir / BASELINE_DIR
    try:
        record = json.loads((folder / "baseline.json").read_text())
        kept = np.load(folder / "test_scores.npz")
    except (OSError, ValueError):
        return None
    if record.get("key") != _clean(_baseline_key(spec)):
        return None
    return kept["impression_id"], kept["prob"], record["summary"]


def _baseline(run_dir: Path, spec, impression_ids) -> tuple[np.ndarray, dict]:
    """The baseline on exactly the model's rows (fit on train, C chosen on valid; baseline.py),
    its test scores in the order of ``impression_ids``: the kept fit (``RUN/baseline``) when
    it matches the data, else a new one (kept for next time)."""
    kept = kept_baseline(run_dir, spec)
    if kept is None:
        fit_baseline(run_dir, spec)
        kept = kept_baseline(run_dir, spec)
    ids, scores, summary = kept
    if not np.array_equal(ids, impression_ids):
        order = np.argsort(ids, kind="stable")
        where = order[np.searchsorted(ids, impression_ids, sorter=order)]
        if not np.array_equal(ids[where], impression_ids):
            raise UserError(f"{run_dir / BASELINE_DIR} does not score every test impression "
                            "of the model; delete it to refit")
        scores = scores[where]
    return scores, summary


def evaluate_run(run_dir, data_dir=None, oracle_dir=None, main_cut: int = 6,
                 aux_cut: int = 21, baseline: bool = True) -> dict:
    """Evaluate a finished run on the SF test split; writes ``RUN/metrics.json`` and plots.

    Returns:
        the metrics dict written to ``metrics.json``.
    """
    from tfrs_models.selling_point.predict import predict_split  # noqa: PLC0415
    from tfrs_models.training.strategies import load_trained_model  # noqa: PLC0415

    run_dir = Path(run_dir)
    model, spec, run_config = load_trained_model(run_dir, data_dir)
    pred = predict_split(model, spec, SF, "test",
                         columns=("clicked", "impression_id", "user_id", "sf_keyword"))
    labels, users, items = pred["clicked"], pred["user_id"], pred["sf_keyword"]
    scorers = {"model": pred["prob"]}
    extra: dict = {}
    if oracle_dir is not None:  # checked before the baseline starts: a bad --oracle fails at once
        # The oracle and the world's restricted oracles (what a model with only popularity /
        # +query / +profile could reach): the model vs these says whether the model or the
        # data limits.
        oracle_scores, ceilings_missing = read_oracle(oracle_dir, pred["impression_id"])
    with ThreadPoolExecutor(max_workers=1) as pool:
        # The baseline fit (scikit-learn, mostly outside the GIL) runs in a thread beside the
        # TensorFlow reads and predictions below.
        baseline_fit = (pool.submit(_baseline, run_dir, spec, pred["impression_id"])
                        if baseline else None)
        if oracle_dir is not None:
            extra["oracle_dir"] = str(oracle_dir)
            if ceilings_missing is not None:
                extra["ceilings_missing"] = ceilings_missing
                warnings.warn(ceilings_missing, stacklevel=2)
        segments = table3_segments_of(spec, users, main_cut, aux_cut)
        auxiliary = None
        if run_config.model.multi_task:
            ad = predict_split(model, spec, AD, "test", columns=("clicked",))
            auxiliary = {"auc": metrics.auc(ad["clicked"], ad["prob"]),
                         "logloss": metrics.logloss(ad["clicked"], ad["prob"]),
                         "n": int(ad["clicked"].size)}
        if baseline_fit is not None:
            scorers["baseline"], extra["baseline_fit"] = baseline_fit.result()
    if oracle_dir is not None:
        scorers.update(oracle_scores)
    test = {name: metrics.all_metrics(labels, s, users, items) for name, s in scorers.items()}
    extra["segments"] = {}
    for segment in sorted(set(segments)):
        idx = segments == segment
        extra["segments"][segment] = {
            "n_users": int(len(set(users[idx]))),
            **{name: metrics.all_metrics(labels[idx], s[idx], users[idx], items[idx])
               for name, s in scorers.items()}}
    if auxiliary is not None:
        extra["auxiliary_ad_click"] = auxiliary
    history = run_files.read(run_dir, run_files.HISTORY)
    extra["plots"] = _plots(run_dir, labels, scorers, history)
    result = _clean(run_files.metrics_document(
        "selling_point", rows=labels.size, test=test,
        oracle_rows=labels.size if oracle_dir is not None else None, **extra))
    run_files.write(run_dir, run_files.METRICS, result)
    return result
