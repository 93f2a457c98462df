"""Sequence-encoder and cascade-model throughput.

1. Time per training batch (forward + backward + Adam step) of the mean, target-attention,
   TCN, MSIA and self-attention encoders at sequence lengths 64, 256, 1024 — how each grows
   with L (002 §4.1.1 claims TCN is lighter than self-attention).
2. Training examples/s of every cascade model (000 + baselines) on raw string inputs.

Usage:
  .venv/bin/python bench/encoder_bench.py --seed 0 [--lengths 64,256,1024] [--batch-size 64]
      [--steps 10] [--json OUT.json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ENCODERS = ("mean", "target_attention", "tcn", "msia", "self_attention")


def _time_steps(step, args, steps: int) -> float:
    step(*args)  # trace + warm up
    step(*args)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step(*args)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_encoders(tf, lengths, batch_size, steps, dim, units, seed):
    from tfrs_models.cascade.encoders.registry import EncoderConfig, build_encoder

    rows = []
    for length in lengths:
        rng = tf.random.Generator.from_seed(seed)
        inputs = {"sequence": rng.normal([batch_size, length, dim]),
                  "mask": tf.ones([batch_size, length], tf.bool),
                  "candidate": rng.normal([batch_size, dim]),
                  "profile": rng.normal([batch_size, 8])}
        labels = tf.cast(rng.uniform([batch_size, 1]) > 0.5, tf.float32)
        for name in ENCODERS:
            tf.keras.utils.set_random_seed(seed)
            encoder = build_encoder(EncoderConfig(name=name, units=units))
            head = tf.keras.layers.Dense(1)
            optimizer = tf.keras.optimizers.Adam(1e-3)

            @tf.function
            def step(inputs, labels, encoder=encoder, head=head, optimizer=optimizer):
                with tf.GradientTape() as tape:
                    logits = head(encoder(inputs, training=True)["click"])
                    loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels, logits))
                variables = encoder.trainable_variables + head.trainable_variables
                optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
                return loss

            seconds = _time_steps(step, (inputs, labels), steps)
            rows.append({"encoder": name, "length": length, "ms_per_batch": 1000 * seconds})
            print(f"encoder {name:17s} L={length:5d}: {1000 * seconds:8.2f} ms/batch", flush=True)
    return rows


def _layout(tmp: Path, length: int, vocab_size: int = 1000) -> dict:
    vocabs = {}
    for name, size in (("user_id", vocab_size), ("item_id", vocab_size), ("category", 50),
                       ("behavior", 4), ("age_bucket", 7)):
        path = tmp / f"{name}.txt"
        path.write_text("".join(f"{i}\n" for i in range(size)))
        vocabs[name] = {"path": str(path), "size": size, "num_oov_buckets": 1}
    ctx = lambda n, v, g: {"name": n, "dtype": "string", "vocab": v, "group": g, "part": "context",
                           "max_length": None, "kind": "scalar"}
    seq = lambda n, v, d="string": {"name": n, "dtype": d, "vocab": v, "group": "history",
                                    "part": "sequence", "max_length": length, "kind": "varlen"}
    features = [ctx("user_id", "user_id", "user"), ctx("age_bucket", "age_bucket", "user_profile"),
                ctx("item_id", "item_id", "item"), ctx("category", "category", "item"),
                seq("hist_item_id", "item_id"), seq("hist_category", "category"),
                seq("hist_behavior", "behavior"), seq("hist_time_gap", None, "float32")]
    return {"features": features, "vocabularies": vocabs, "sequence_length": length}


def _batch(np, tf, rng, batch_size, length):
    ids = lambda high, shape: tf.constant(rng.integers(0, high, size=shape).astype(str).astype(bytes))
    return {"user_id": ids(1000, [batch_size]), "age_bucket": ids(7, [batch_size]),
            "item_id": ids(1000, [batch_size]), "category": ids(50, [batch_size]),
            "hist_item_id": ids(1000, [batch_size, length]), "hist_category": ids(50, [batch_size, length]),
            "hist_behavior": tf.constant(rng.choice([b"pv", b"cart", b"fav", b"buy"], [batch_size, length])),
            "hist_time_gap": tf.constant(rng.random([batch_size, length]).astype(np.float32)),
            "click": tf.constant(rng.integers(0, 2, batch_size)),
            "conversion": tf.constant(rng.integers(0, 2, batch_size))}


def bench_models(tf, length, batch_size, steps, seed, encoder):
    import numpy as np

    from tfrs_models.cascade.config import MODELS, ModelConfig
    from tfrs_models.cascade.encoders.registry import EncoderConfig
    from tfrs_models.cascade.models.registry import build_model

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        layout = _layout(Path(tmp), length)
        batch = _batch(np, tf, np.random.default_rng(seed), batch_size, length)
        for name in MODELS:
            tf.keras.utils.set_random_seed(seed)
            model = build_model(layout, ModelConfig(name=name, encoder=EncoderConfig(name=encoder)))
            model.compile(optimizer=tf.keras.optimizers.Adam(1e-3))
            step = tf.function(model.train_step)  # tfrs train_step: compute_loss + optimizer step
            seconds = _time_steps(step, (batch,), steps)
            rows.append({"model": name, "encoder": encoder, "length": length,
                         "examples_per_second": batch_size / seconds})
            print(f"model {name:14s} ({encoder}, L={length}): {batch_size / seconds:9.1f} examples/s",
                  flush=True)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lengths", default="64,256,1024")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10, help="timed steps (median reported)")
    parser.add_argument("--dim", type=int, default=25, help="per-event embedding width E")
    parser.add_argument("--units", type=int, default=16)
    parser.add_argument("--model-length", type=int, default=50, help="L for the model throughput")
    parser.add_argument("--model-encoder", default="tcn")
    parser.add_argument("--json", default=None, help="write the figures here")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from adpush_core.tfenv import import_tensorflow

    tf = import_tensorflow()
    tf.config.experimental.enable_op_determinism()
    lengths = [int(x) for x in args.lengths.split(",") if x]
    result = {"seed": args.seed, "batch_size": args.batch_size, "steps": args.steps,
              "encoders": bench_encoders(tf, lengths, args.batch_size, args.steps, args.dim,
                                         args.units, args.seed),
              "models": bench_models(tf, args.model_length, args.batch_size, args.steps, args.seed,
                                     args.model_encoder)}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
