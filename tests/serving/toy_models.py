"""Small real models for the serving tests, the bench and the demo (no training needed).

* ``half_plus_two``: TF Serving's fixture (y = 0.5·x + 2) regenerated with TF 2.21, with the
  TF1-variant signatures of TFSERVING_CONTRACT.md §0: ``serving_default`` (x→y),
  ``regress_x_to_y``, ``regress_x_to_y2``, ``regress_x2_to_y3``, ``classify_x_to_y``,
  ``classify_x2_to_y3`` (y2 = 0.5·x + 3, y3 = 0.5·x2 + 3).
* ``keyword_ctr``: a tf-keras click model over raw string/int features with ``StringLookup``
  vocabularies shipped as SavedModel assets; exported with all three serving signatures
  through ``tfrs_models.signatures``' builders, the shape every adpush model family takes.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from adpush_core.tfenv import import_tensorflow

from serving.publish import publish_saved_model
from tfrs_models.signatures import SELECT_SELLING_POINTS, make_serving_signatures

def export_module(module, signatures, base_path, model_name: str, version: int | None = None,
                  warmup_requests=None, before_publish=None) -> Path:
    """``tf.saved_model.save`` a module (as a training run does), then publish that directory
    as ``base_path/model_name/<version>/`` through ``serving.publish.publish_saved_model``."""
    import tempfile

    tf = import_tensorflow()

    with tempfile.TemporaryDirectory(prefix="toy-saved-model-") as work:
        saved = Path(work) / "saved_model"
        tf.saved_model.save(module, str(saved), signatures=dict(signatures))
        return publish_saved_model(saved, base_path, model_name, version=version,
                                      warmup_requests=warmup_requests, before_publish=before_publish)


USERS = ["u1", "u2", "u3", "u4"]
QUERIES = ["running shoes", "phone case", "desk lamp"]
ADS = ["ad_10", "ad_11", "ad_12", "ad_13", "ad_14"]
SELLING_POINTS = ["free shipping", "waterproof", "lightweight", "best seller", "50% off", "new arrival"]


def half_plus_two_module(b: float = 2.0):
    """A ``tf.Module`` with y = a·x + b, y2 = a·x + c, y3 = a·x2 + c and its six signatures."""
    tf = import_tensorflow()

    class HalfPlusTwo(tf.Module):
        def __init__(self):
            super().__init__()
            self.a = tf.Variable(0.5, name="a")
            self.b = tf.Variable(float(b), name="b")
            self.c = tf.Variable(float(b) + 1.0, name="c")

        @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32, name="x")])
        def predict(self, x):
            return {"y": self.a * x + self.b}

        def _parse(self, serialized):
            return tf.io.parse_example(serialized, {
                "x": tf.io.FixedLenFeature([1], tf.float32, default_value=[0.0]),
                "x2": tf.io.FixedLenFeature([1], tf.float32, default_value=[0.0])})

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
        def regress_x_to_y(self, inputs):
            return {"outputs": self.a * self._parse(inputs)["x"] + self.b}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
        def regress_x_to_y2(self, inputs):
            return {"outputs": self.a * self._parse(inputs)["x"] + self.c}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
        def regress_x2_to_y3(self, inputs):
            return {"outputs": self.a * self._parse(inputs)["x2"] + self.c}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
        def classify_x_to_y(self, inputs):
            return {"scores": self.a * self._parse(inputs)["x"] + self.b}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
        def classify_x2_to_y3(self, inputs):
            return {"scores": self.a * self._parse(inputs)["x2"] + self.c}

    module = HalfPlusTwo()
    signatures = {
        "serving_default": module.predict,
        "regress_x_to_y": module.regress_x_to_y,
        "regress_x_to_y2": module.regress_x_to_y2,
        "regress_x2_to_y3": module.regress_x2_to_y3,
        "classify_x_to_y": module.classify_x_to_y,
        "classify_x2_to_y3": module.classify_x2_to_y3,
    }
    return module, signatures


def export_half_plus_two(base_path, model_name: str = "half_plus_two", version: int | None = None,
                         b: float = 2.0, warmup: bool = True) -> Path:
    module, signatures = half_plus_two_module(b)
    requests = [("serving_default", {"x": np.array([[1.0], [2.0]], np.float32)})] if warmup else None
    return export_module(module, signatures, base_path, model_name, version=version,
                         warmup_requests=requests)


# ------------------------------------------------------------------------------------------------


RAW_FEATURES = ("user_id", "query", "ad_id", "selling_point")


def keyword_ctr_model(vocab_dir: str | Path, seed: int = 0, dim: int = 8):
    """A tf-keras model: P(click | user, query, ad, selling point, hour).

    Inputs are raw values as the logs have them: strings ``user_id``, ``query``, ``ad_id``,
    ``selling_point`` and int64 ``hour`` (each [batch]); the vocabularies are text files that
    ``StringLookup`` ships as SavedModel assets. Output ``p_click`` [batch, 1].
    """
    tf = import_tensorflow()

    tf.keras.utils.set_random_seed(seed)
    vocab_dir = Path(vocab_dir)
    vocab_dir.mkdir(parents=True, exist_ok=True)
    vocabs = {"user_id": USERS, "query": QUERIES, "ad_id": ADS, "selling_point": SELLING_POINTS}
    inputs, parts = {}, []
    for name, vocab in vocabs.items():
        path = vocab_dir / f"{name}.vocab"
        path.write_text("\n".join(vocab) + "\n")
        inp = tf.keras.Input(shape=(), dtype=tf.string, name=name)
        ids = tf.keras.layers.StringLookup(vocabulary=str(path), num_oov_indices=1, name=f"{name}_lookup")(inp)
        emb = tf.keras.layers.Embedding(len(vocab) + 1, dim, name=f"{name}_embedding")(ids)
        inputs[name] = inp
        parts.append(emb)
    hour = tf.keras.Input(shape=(), dtype=tf.int64, name="hour")
    inputs["hour"] = hour
    hour_f = tf.keras.layers.Lambda(lambda h: tf.expand_dims(tf.cast(h, tf.float32) / 23.0, -1),
                                    name="hour_scaled")(hour)
    x = tf.keras.layers.Concatenate(name="features")(parts + [hour_f])
    x = tf.keras.layers.Dense(16, activation="relu", name="hidden")(x)
    x = tf.keras.layers.Dropout(0.1, name="dropout")(x)  # a training knob that must not reach serving
    p = tf.keras.layers.Dense(1, activation="sigmoid", name="p_click")(x)
    return tf.keras.Model(inputs=inputs, outputs={"p_click": p}, name="keyword_ctr")


def keyword_ctr_signatures(model) -> dict[str, Any]:
    """serving_default (raw features), classify + regress (tf.Example), select_selling_points."""
    tf = import_tensorflow()

    raw_spec = {name: tf.TensorSpec([None], tf.string) for name in RAW_FEATURES}
    raw_spec["hour"] = tf.TensorSpec([None], tf.int64)

    def p_click(features):
        return model(features, training=False)["p_click"]

    return make_serving_signatures(p_click, raw_spec, output_name="p_click",
                                      candidate_feature="selling_point", k=3)


def keyword_ctr_requests(n: int = 4, seed: int = 0) -> dict[str, np.ndarray]:
    """Raw ``serving_default`` inputs for ``n`` rows (one unknown user to exercise OOV)."""
    rng = np.random.default_rng(seed)
    users = USERS + ["u_unknown"]
    return {
        "user_id": np.array([users[i] for i in rng.integers(0, len(users), n)], dtype=object),
        "query": np.array([QUERIES[i] for i in rng.integers(0, len(QUERIES), n)], dtype=object),
        "ad_id": np.array([ADS[i] for i in rng.integers(0, len(ADS), n)], dtype=object),
        "selling_point": np.array([SELLING_POINTS[i] for i in rng.integers(0, len(SELLING_POINTS), n)],
                                  dtype=object),
        "hour": rng.integers(0, 24, n).astype(np.int64),
    }


def select_request(n: int = 2, seed: int = 0) -> dict[str, np.ndarray]:
    """``select_selling_points`` inputs: n requests × all candidates (last one padded with "")."""
    raw = keyword_ctr_requests(n, seed)
    cands = np.array([SELLING_POINTS[:5] for _ in range(n)], dtype=object)
    cands[-1, -1] = ""
    return {"user_id": raw["user_id"], "query": raw["query"], "ad_id": raw["ad_id"], "hour": raw["hour"],
            "candidate_selling_points": cands}


def export_keyword_ctr(base_path, model_name: str = "keyword_ctr", version: int | None = None,
                       seed: int = 0, work_dir: str | Path | None = None):
    """Build and export the model; returns (export dir, model, signatures)."""
    import tempfile

    tf = import_tensorflow()

    vocab_dir = Path(work_dir or tempfile.mkdtemp(prefix="keyword-ctr-vocab-"))
    model = keyword_ctr_model(vocab_dir, seed=seed)
    signatures = keyword_ctr_signatures(model)
    module = tf.Module()
    module.model = model
    warmup = [("serving_default", keyword_ctr_requests(2, seed)),
              (SELECT_SELLING_POINTS, select_request(1, seed))]
    path = export_module(module, signatures, base_path, model_name, version=version, warmup_requests=warmup)
    return path, model, signatures
