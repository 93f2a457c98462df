"""Serving SavedModels of adpush's model families, over raw values as the logs have them.

A training run (``RUN/config.json`` with ``family``) becomes ``RUN/export/saved_model`` plus
``RUN/export_info.json`` (the contract ``export.export_run`` reads, serving/README.md):

- **selling_point** (001 BM/MTDL/AMTDL): inputs are the SF log's raw strings — the profile
  fields (and ``user_id`` if the model uses it), ``query`` (space-separated tokens, as in
  ``sf_impressions.csv``), the click history ``history_sf_keywords`` and
  ``history_ad_title_tokens`` (space-separated, most recent first) and ``sf_keyword``. Token bags
  are split and padded inside the graph (``tf.strings.split``, core ops); the query's category is
  derived from its first ``cat_<digits>`` token among its first ``max_length`` tokens, as the Beam
  job does, and a query without one (``"shoes"``, ``""``, any text) gets the empty category, i.e.
  padding: a request never fails on a query's wording. Signatures: ``serving_default``
  (``p_sf_click``), ``regress``/``classify`` over ``tf.Example``, and ``select_selling_points``
  (the context features + ``candidate_selling_points`` → a score per candidate and the top-k).
- **cascade** (000 CTR→CVR): ``serving_default`` over the sequence features as the model reads
  them (``tfrs_models/cascade/export.py``), outputs ``p_click``, ``p_conversion``.
"""
from __future__ import annotations

import json
from pathlib import Path

from adpush_core.tfenv import import_tensorflow
from adpush_core.errors import UserError

EXPORT_INFO = "export_info.json"
SAVED_MODEL_DIR = "export/saved_model"
PROFILE_FIELDS = ("age_bucket", "gender", "city_tier", "activity_level")
HISTORY_FIELDS = ("history_sf_keywords", "history_ad_title_tokens")


def run_family(run_dir: Path) -> str:
    config = Path(run_dir) / "config.json"
    if not config.is_file():
        raise UserError(f"{config} does not exist: {run_dir} is not a training run")
    family = json.loads(config.read_text()).get("family")
    if family not in ("selling_point", "cascade"):
        raise UserError(f"{config}: unknown model family {family!r}")
    return family


def prepare_run(run_dir: str | Path, k: int = 3) -> Path:
    """Write the run's serving SavedModel and export_info.json; return export_info's path."""
    run_dir = Path(run_dir)
    family = run_family(run_dir)
    if family == "selling_point":
        info = _prepare_selling_point(run_dir, k)
    else:
        info = _prepare_cascade(run_dir)
    path = run_dir / EXPORT_INFO
    path.write_text(json.dumps(info, indent=2) + "\n")
    return path


# --- validation metrics (the export gate reads these) -------------------------------------------
def validation_metrics(run_dir: str | Path) -> dict[str, float]:
    """The validation-split figures of a training run's model, flat by metric name.

    Reads, in order (the first that exists wins; the test split is never read):

    1. ``RUN/metrics.json`` → ``"valid"`` (or ``"validation"``): the model's figures, under
       ``overall`` and/or ``model`` when the section also holds other scorers (baseline,
       oracle); nested task sections become dotted names (``click.auc``).
    2. selling-point runs: ``RUN/history.json``, the main-phase epoch whose weights training
       kept (``kept_epoch``: the last marked ``kept``; the lowest ``valid_logloss`` in a history
       without the mark) → ``auc``, ``logloss``.
    3. cascade runs: ``RUN/history.json`` (Keras' figures per epoch), the epoch whose weights
       were kept (the lowest ``val_objective``, which early stopping restores; without it, the lowest
       ``val_loss`` if training stopped early, else the last) → ``click.auc``,
       ``conversion.auc``, ``cvr_auc_clicked``, ``loss``.
    """
    run_dir = Path(run_dir)
    metrics_path = run_dir / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    section = metrics.get("valid", metrics.get("validation"))
    if isinstance(section, dict):
        node = section.get("overall", section)
        node = node.get("model", node) if isinstance(node, dict) else node
        flat = _flat_numbers(node)
        if flat:
            return flat
    history_path = run_dir / "history.json"
    records = json.loads(history_path.read_text()) if history_path.is_file() else []
    if records:
        from tfrs_models.training.strategies import kept_epoch  # noqa: PLC0415

        best = kept_epoch(records)
        if best is not None:
            return {"auc": float(best["valid_auc"]), "logloss": float(best["valid_logloss"])}
    history = {k: [r[k] for r in records if k in r] for k in {k for r in records for k in r}}
    if history.get("val_loss"):
        losses = history["val_loss"]
        configured = json.loads((run_dir / "config.json").read_text()).get("train", {}).get("epochs") \
            if (run_dir / "config.json").is_file() else None
        objective = history.get("val_objective")
        if objective:
            # EarlyStopping(monitor="val_objective", restore_best_weights=True) restores the
            # first epoch with the lowest objective when training ends, stopped early or not.
            epoch = min(range(len(objective)), key=objective.__getitem__)
        else:
            stopped_early = isinstance(configured, int) and len(losses) < configured
            epoch = (min(range(len(losses)), key=losses.__getitem__) if stopped_early
                     else len(losses) - 1)
        names = {"val_click_auc": "click.auc", "val_conversion_auc": "conversion.auc",
                 "val_cvr_auc_clicked": "cvr_auc_clicked", "val_loss": "loss"}
        return {flat: float(history[key][epoch]) for key, flat in names.items()
                if key in history and len(history[key]) > epoch}
    raise UserError(f"{run_dir}: no validation metrics found (metrics.json 'valid', or history.json "
                    f"with valid_* or val_* figures)")


def _flat_numbers(node, prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    if not isinstance(node, dict):
        return out
    for key, value in node.items():
        name = f"{prefix}{key}"
        if isinstance(value, bool):
            continue
        if isinstance(value, (int, float)):
            if key not in ("n", "positives"):  # counts, not figures of merit
                out[name] = float(value)
        elif isinstance(value, dict) and key not in ("baseline", "oracle") and not key.startswith("ceiling"):
            out.update(_flat_numbers(value, f"{name}."))
    return out


# --- selling point ----------------------------------------------------------------------------
def selling_point_raw_inputs(model) -> dict:
    """``{name: TensorSpec([None], string)}`` of the raw inputs a selling-point model needs."""
    tf = import_tensorflow()

    needed = set(model.input_signature("sf"))
    names = ["user_id", *PROFILE_FIELDS, *HISTORY_FIELDS, "query", "sf_keyword"]
    wanted = [n for n in names
              if n in needed or (n == "query" and needed & {"query_tokens", "query_category"})]
    return {n: tf.TensorSpec([None], tf.string, name=n) for n in wanted}


# Every character Python's str.split() splits on (what the Beam job does with a log field):
# ASCII whitespace, the information separators \x1c-\x1f, NEL and Unicode separators (Z*).
_WHITESPACE = r"[\t\n\x0b\x0c\r \x1c-\x1f\x{85}\p{Z}]+"


def split_tokens(text):
    """``[B]`` strings → ragged ``[B, None]`` tokens, split as Python's ``str.split()``."""
    tf = import_tensorflow()

    return tf.strings.split(tf.strings.regex_replace(text, _WHITESPACE, " "))


def query_category(query, max_tokens: int):
    """``[B]`` string: the category id of each query's first ``cat_<digits>`` token among its
    first ``max_tokens`` tokens, leading zeros dropped (``"cat_07 mod_x"`` → ``"7"``), as
    ``beam_pipelines.build_sf_examples.query_category``; ``""`` (padding) when there is none."""
    tf = import_tensorflow()

    tokens = split_tokens(query)[:, :max_tokens]
    is_category = tf.strings.regex_full_match(tokens, "cat_[0-9]+")
    first = tf.strings.reduce_join(tf.ragged.boolean_mask(tokens, is_category)[:, :1], axis=1)
    return tf.strings.regex_replace(first, "^cat_0*([0-9])", r"\1")


def selling_point_score_fn(model, spec):
    """Raw log strings → the model's SF click probability ``[batch]``."""
    tf = import_tensorflow()

    features = spec.dataset("sf").features
    signature = model.input_signature("sf")
    query_len = features["query_tokens"].max_length

    def bag(text, length):
        return split_tokens(text).to_tensor(default_value="", shape=[None, length])

    def score(raw):
        inputs = {}
        for name in signature:
            if name == "query_tokens":
                inputs[name] = bag(raw["query"], query_len)
            elif name == "query_category":
                inputs[name] = query_category(raw["query"], query_len)
            elif name in HISTORY_FIELDS:
                inputs[name] = bag(raw[name], features[name].max_length)
            else:
                inputs[name] = raw[name]
        return model.predict_sf(inputs, training=False)

    return score


def _prepare_selling_point(run_dir: Path, k: int) -> dict:
    tf = import_tensorflow()

    from serving.export import make_serving_signatures
    from tfrs_models.training.strategies import load_trained_model

    model, spec, run_config = load_trained_model(run_dir)
    input_spec = selling_point_raw_inputs(model)
    score = selling_point_score_fn(model, spec)
    signatures = make_serving_signatures(score, input_spec, output_name="p_sf_click",
                                         candidate_feature="sf_keyword", k=k)
    module = tf.Module()
    module.model = model
    for name, fn in signatures.items():
        setattr(module, f"sig_{name}", fn)
    out = run_dir / SAVED_MODEL_DIR
    if out.exists():
        import shutil

        shutil.rmtree(out)
    tf.saved_model.save(module, str(out), signatures=signatures)
    example = {"user_id": ["0"], "age_bucket": ["2"], "gender": ["1"], "city_tier": ["2"],
               "activity_level": ["1"], "history_sf_keywords": [""],
               "history_ad_title_tokens": [""], "query": ["cat_00"], "sf_keyword": [""]}
    warmup = {"serving_default": {n: example[n] for n in input_spec}}
    context = {n: example[n] for n in input_spec if n != "sf_keyword"}
    warmup["select_selling_points"] = {**context, "candidate_selling_points": [["", ""]]}
    return {"saved_model": SAVED_MODEL_DIR,
            "family": f"selling_point/{run_config.model.name}",
            "warmup_inputs": warmup}


# --- cascade ----------------------------------------------------------------------------------
def _prepare_cascade(run_dir: Path) -> dict:
    """Cascade runs already hold ``RUN/saved_model`` with ``serving_default`` (cascade/train.py)."""
    saved = run_dir / "saved_model"
    if not (saved / "saved_model.pb").is_file():
        raise UserError(f"{saved} has no saved_model.pb: did the cascade training finish?")
    config = json.loads((run_dir / "config.json").read_text())
    model = config.get("model", {})
    name = model.get("model", model.get("name", "")) if isinstance(model, dict) else model
    return {"saved_model": "saved_model", "family": f"cascade/{name}"}
