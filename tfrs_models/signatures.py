"""SavedModel signatures over raw feature values, the shape every adpush model family serves.

* ``make_predict_signature``: ``serving_default`` over raw features (strings/ints as the logs
  have them; vocabulary lookups are inside the model) → named outputs.
* ``make_regress_signature`` / ``make_classify_signature``: the same scoring function over
  serialized ``tf.Example`` (input key ``inputs``), for TF Serving's Regress/Classify APIs.
* ``make_select_selling_points_signature``: a per-(request, candidate) scoring function turned
  into ``select_selling_points``: a score per candidate and the top-k keywords.
* ``make_serving_signatures``: all of them from one scoring function.

No training knob is ever an input; TensorFlow is imported lazily.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np

from adpush_core.tfenv import import_tensorflow

SELECT_SELLING_POINTS = "select_selling_points"




def _feature_spec_to_parse_spec(feature_spec: Mapping[str, Any]) -> dict[str, Any]:
    """``{name: tf.io.FixedLenFeature | tf.TensorSpec | tf.DType}`` → a ``parse_example`` spec.

    A ``TensorSpec([None], dtype)`` (a raw serving input) becomes a scalar ``FixedLenFeature``;
    ints are parsed as int64 and cast back by ``_cast_parsed``.
    """
    tf = import_tensorflow()

    spec = {}
    for name, feat in feature_spec.items():
        if isinstance(feat, (tf.io.FixedLenFeature, tf.io.VarLenFeature, tf.io.RaggedFeature,
                             tf.io.FixedLenSequenceFeature)):
            spec[name] = feat
            continue
        if isinstance(feat, tf.TensorSpec):
            dtype, shape = feat.dtype, list(feat.shape[1:]) if feat.shape.rank else []
        else:
            dtype, shape = tf.as_dtype(feat), []
        parse_dtype = tf.string if dtype == tf.string else (tf.float32 if dtype.is_floating else tf.int64)
        spec[name] = tf.io.FixedLenFeature(shape, parse_dtype)
    return spec


def _cast_parsed(parsed: dict, feature_spec: Mapping[str, Any]) -> dict:
    tf = import_tensorflow()

    out = {}
    for name, value in parsed.items():
        feat = feature_spec[name]
        dtype = feat.dtype if isinstance(feat, tf.TensorSpec) else (
            tf.as_dtype(feat) if isinstance(feat, (tf.DType, str, type)) else None)
        out[name] = tf.cast(value, dtype) if dtype is not None and value.dtype != dtype else value
    return out


def make_regress_signature(score_fn: Callable[[dict], Any], feature_spec: Mapping[str, Any]):
    """Signature over serialized tf.Example for the Regress API: ``inputs`` → ``outputs`` [batch].

    Args:
      score_fn: raw features ``{name: [batch, ...] tensor}`` → a float score, [batch] or [batch, 1].
      feature_spec: ``{name: tf.TensorSpec([None], dtype) | tf.io.FixedLenFeature}`` — the raw
        serving inputs; examples must carry every feature.
    """
    tf = import_tensorflow()

    parse_spec = _feature_spec_to_parse_spec(feature_spec)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def regress(inputs):
        features = _cast_parsed(tf.io.parse_example(inputs, parse_spec), feature_spec)
        score = tf.reshape(tf.cast(score_fn(features), tf.float32), [-1])
        return {"outputs": score}

    return regress


def make_classify_signature(score_fn: Callable[[dict], Any], feature_spec: Mapping[str, Any],
                            class_names: Sequence[str] = ("0", "1")):
    """Signature over serialized tf.Example for the Classify API: ``inputs`` → ``classes``, ``scores``.

    For two classes ``score_fn`` returns P(class 1) ([batch] or [batch, 1]) and the scores are
    ``[1 - p, p]``; for more it returns [batch, n_classes] probabilities. Outputs are
    ``classes`` (string [batch, n]) and ``scores`` (float [batch, n]).
    """
    tf = import_tensorflow()

    parse_spec = _feature_spec_to_parse_spec(feature_spec)
    names = tf.constant(list(class_names))
    n_classes = len(class_names)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def classify(inputs):
        features = _cast_parsed(tf.io.parse_example(inputs, parse_spec), feature_spec)
        raw = tf.cast(score_fn(features), tf.float32)
        if n_classes == 2:
            p = tf.reshape(raw, [-1, 1])
            scores = tf.concat([1.0 - p, p], axis=1)
        else:
            scores = tf.reshape(raw, [-1, n_classes])
        classes = tf.tile(names[tf.newaxis, :], [tf.shape(scores)[0], 1])
        return {"classes": classes, "scores": scores}

    return classify


def make_select_selling_points_signature(
    score_fn: Callable[[dict], Any],
    context_spec: Mapping[str, Any],
    candidate_feature: str = "selling_point",
    candidate_dtype: Any = None,
    k: int = 3,
    candidates_key: str = "candidate_selling_points",
):
    """The ``select_selling_points`` signature: (user, query, ad, candidates) → scores and top-k.

    Inputs: every key of ``context_spec`` (raw user/query/ad features, ``[batch]`` each) and
    ``candidates_key``: ``[batch, n_candidates]`` candidate keywords ("" pads a short list).
    ``score_fn`` is called once on the flattened ``batch * n_candidates`` pairs with the context
    features repeated per candidate and the keyword under ``candidate_feature``.

    Outputs: ``scores`` [batch, n] (padding gets -inf), ``top_k_selling_points`` [batch, min(k, n)]
    (keywords, best first) and ``top_k_scores`` [batch, min(k, n)].
    """
    tf = import_tensorflow()

    candidate_dtype = tf.as_dtype(candidate_dtype or tf.string)
    specs = {}
    for name, spec in context_spec.items():
        spec = spec if isinstance(spec, tf.TensorSpec) else tf.TensorSpec([None], tf.as_dtype(spec))
        specs[name] = tf.TensorSpec(spec.shape, spec.dtype, name=name)
    specs[candidates_key] = tf.TensorSpec([None, None], candidate_dtype, name=candidates_key)

    def _select(features):
        candidates = features[candidates_key]
        n = tf.shape(candidates)[1]
        flat = {}
        for name in context_spec:
            value = features[name]
            flat[name] = tf.repeat(value, n, axis=0)
        flat[candidate_feature] = tf.reshape(candidates, [-1])
        scores = tf.reshape(tf.cast(score_fn(flat), tf.float32), tf.shape(candidates))
        if candidate_dtype == tf.string:
            padding = tf.equal(candidates, "")
            scores = tf.where(padding, tf.constant(-np.inf, tf.float32), scores)
        top = tf.math.top_k(scores, k=tf.minimum(k, n))
        top_keywords = tf.gather(candidates, top.indices, batch_dims=1)
        return {"scores": scores, "top_k_selling_points": top_keywords, "top_k_scores": top.values}

    # Keyword arguments (not one dict) give the signature its input keys.
    names = list(specs)

    def select(**kwargs):
        return _select({name: kwargs[name] for name in names})

    sig = tf.function(select, input_signature=None)
    return sig.get_concrete_function(**specs)


def make_predict_signature(predict_fn: Callable[[dict], Any], input_spec: Mapping[str, Any]):
    """``serving_default`` over raw features: ``{name: TensorSpec}`` → ``predict_fn`` (a dict of
    named outputs). Returns a concrete function with the input keys of ``input_spec``."""
    tf = import_tensorflow()

    specs = {}
    for name, spec in input_spec.items():
        spec = spec if isinstance(spec, tf.TensorSpec) else tf.TensorSpec([None], tf.as_dtype(spec))
        specs[name] = tf.TensorSpec(spec.shape, spec.dtype, name=name)
    names = list(specs)

    def predict(**kwargs):
        out = predict_fn({name: kwargs[name] for name in names})
        if not isinstance(out, Mapping):
            raise TypeError("predict_fn must return a dict of named outputs")
        return dict(out)

    return tf.function(predict).get_concrete_function(**specs)


def make_serving_signatures(score_fn: Callable[[dict], Any], input_spec: Mapping[str, Any],
                            output_name: str = "p_click", candidate_feature: str | None = None, k: int = 3,
                            extra_outputs: Callable[[dict], Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """All serving signatures of a model family from one scoring function.

    Args:
      score_fn: raw features ``{name: [batch, ...]}`` → probability ``[batch]`` / ``[batch, 1]``
        (call the model with ``training=False`` inside).
      input_spec: ``{name: tf.TensorSpec}`` of the raw serving inputs (batch dimension first).
      output_name: the ``serving_default`` output key (``p_click``, ``p_sf_click``...).
      candidate_feature: the input that holds one selling-point keyword; when given, the
        ``select_selling_points`` signature is added with the other inputs as context.
      extra_outputs: more named ``serving_default`` outputs (e.g. ``p_conversion``, ``p_ctcvr``).

    Returns:
      ``{"serving_default", "regress", "classify"[, "select_selling_points"]}`` → functions for
      ``tf.saved_model.save``.
    """
    tf = import_tensorflow()

    def flat_score(features):
        return tf.reshape(score_fn(features), [-1])

    def predict(features):
        out = {output_name: flat_score(features)}
        if extra_outputs is not None:
            out.update(extra_outputs(features))
        return out

    sigs = {
        "serving_default": make_predict_signature(predict, input_spec),
        "regress": make_regress_signature(flat_score, input_spec),
        "classify": make_classify_signature(flat_score, input_spec),
    }
    if candidate_feature is not None:
        spec = input_spec[candidate_feature]
        context = {n: s for n, s in input_spec.items() if n != candidate_feature}
        sigs[SELECT_SELLING_POINTS] = make_select_selling_points_signature(
            flat_score, context, candidate_feature=candidate_feature,
            candidate_dtype=spec.dtype if isinstance(spec, tf.TensorSpec) else spec, k=k)
    return sigs
