"""The selling-point family's serving export (001 BM/MTDL/AMTDL), over raw values as the logs have them.

``prepare_run(RUN)`` (called by ``adpush train sf`` through ``tfrs_models.export.prepare_run``)
rebuilds the trained model from ``RUN/model/weights``, saves it once as ``RUN/export/saved_model``
and returns the run's ``export_info.json`` content.

Inputs are the SF log's raw strings, ``[batch]`` each: the profile fields (and ``user_id`` if
the model uses it), ``query`` (space-separated tokens, as in ``sf_impressions.csv``), the click
history ``history_sf_keywords`` and ``history_ad_title_tokens`` (space-separated, most recent
first) and ``sf_keyword``. Token bags are split and padded inside the graph
(``tf.strings.split``, core ops); the query's category is derived from its first
``cat_<digits>`` token among its first ``max_length`` tokens, as the Beam job does, and a query
without one (``"shoes"``, ``""``, any text) gets the empty category, i.e. padding: a request
never fails on a query's wording. Vocabularies are ``StringLookup`` assets inside the model; no
training knob is an input.

Signatures (``tfrs_models.signatures``): ``serving_default`` (``p_sf_click``), ``regress`` /
``classify`` over ``tf.Example``, and ``select_selling_points`` (the context features +
``candidate_selling_points`` → a score per candidate and the top-k). ``select_request`` builds
that signature's inputs with numpy, for any client's ``predict``.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from adpush_core.tfenv import import_tensorflow

PROFILE_FIELDS = ("age_bucket", "gender", "city_tier", "activity_level")
HISTORY_FIELDS = ("history_sf_keywords", "history_ad_title_tokens")
CANDIDATES = "candidate_selling_points"
OUTPUT = "p_sf_click"

# Every character Python's str.split() splits on (what the Beam job does with a log field):
# ASCII whitespace, the information separators \x1c-\x1f, NEL and Unicode separators (Z*).
_WHITESPACE = r"[\t\n\x0b\x0c\r \x1c-\x1f\x{85}\p{Z}]+"


def raw_inputs(model) -> dict:
    """``{name: TensorSpec([None], string)}`` of the raw inputs a selling-point model needs."""
    tf = import_tensorflow()

    needed = set(model.input_signature("sf"))
    names = ["user_id", *PROFILE_FIELDS, *HISTORY_FIELDS, "query", "sf_keyword"]
    wanted = [n for n in names
              if n in needed or (n == "query" and needed & {"query_tokens", "query_category"})]
    return {n: tf.TensorSpec([None], tf.string, name=n) for n in wanted}


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


def score_fn(model, spec):
    """Raw log strings ``{name: [B]}`` → the model's SF click probability ``[B]``."""
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


def serving_signatures(model, spec, k: int = 3) -> dict:
    """``{serving_default, regress, classify, select_selling_points}`` over raw log strings."""
    from tfrs_models.signatures import make_serving_signatures  # noqa: PLC0415

    return make_serving_signatures(score_fn(model, spec), raw_inputs(model), output_name=OUTPUT,
                                   candidate_feature="sf_keyword", k=k)


def save(model, spec, export_dir: str | Path, k: int = 3) -> Path:
    """``tf.saved_model.save`` the model with ``serving_signatures`` at ``export_dir`` (replaced
    if it exists; versioned, atomic publishing is ``serving``'s job)."""
    tf = import_tensorflow()

    export_dir = Path(export_dir)
    signatures = serving_signatures(model, spec, k)
    module = tf.Module()
    module.model = model
    for name, fn in signatures.items():
        setattr(module, f"sig_{name}", fn)
    if export_dir.exists():
        shutil.rmtree(export_dir)
    tf.saved_model.save(module, str(export_dir), signatures=signatures)
    return export_dir


def select_request(context: Mapping[str, Any], candidates: Sequence[str] | Sequence[Sequence[str]]
                   ) -> dict[str, np.ndarray]:
    """``select_selling_points`` inputs: one request (scalar context values, a list of
    candidates) or a batch (lists, a list of lists); short candidate lists are padded with ``""``,
    which the signature scores ``-inf`` and never picks."""
    batched = len(candidates) > 0 and not isinstance(candidates[0], (str, bytes))
    inputs = {}
    for key, value in context.items():
        arr = np.asarray(value if batched else [value])
        inputs[key] = arr.astype(object) if arr.dtype.kind in "US" else arr
    rows = [list(c) for c in candidates] if batched else [list(candidates)]
    width = max(len(c) for c in rows)
    inputs[CANDIDATES] = np.array([c + [""] * (width - len(c)) for c in rows], dtype=object)
    return inputs


_WARMUP_ROW = {"user_id": "0", "age_bucket": "2", "gender": "1", "city_tier": "2",
               "activity_level": "1", "history_sf_keywords": "", "history_ad_title_tokens": "",
               "query": "cat_00", "sf_keyword": ""}


def prepare_run(run_dir: Path, k: int = 3) -> dict:
    """Save the run's model once as ``RUN/export/saved_model``; return its ``export_info``.

    The validation figures are those of the epoch whose weights training kept (the lowest
    validation logloss, ``training.strategies.kept_epoch``), which are the weights exported.
    """
    from tfrs_models.export import SAVED_MODEL_DIR, validation_section  # noqa: PLC0415
    from tfrs_models.training.strategies import kept_epoch, load_trained_model  # noqa: PLC0415

    model, spec, run_config = load_trained_model(run_dir)
    save(model, spec, run_dir / SAVED_MODEL_DIR, k)
    names = list(raw_inputs(model))
    context = {n: _WARMUP_ROW[n] for n in names if n != "sf_keyword"}
    warmup = {"serving_default": {n: [_WARMUP_ROW[n]] for n in names},
              "select_selling_points": {k: v.tolist() for k, v in select_request(context, ["", ""]).items()}}
    info = {"saved_model": SAVED_MODEL_DIR, "family": f"selling_point/{run_config.model.name}",
            "warmup_inputs": warmup}
    history_path = run_dir / "history.json"
    kept = kept_epoch(json.loads(history_path.read_text())) if history_path.is_file() else None
    if kept is not None:
        info["validation"] = validation_section(
            kept.get("epoch"), {"auc": kept["valid_auc"], "logloss": kept["valid_logloss"]})
    return info
