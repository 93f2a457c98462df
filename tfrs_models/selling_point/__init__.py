"""The selling-point model family of 001: BM, MTDL, AMTDL and their training strategies.

The papers (000–003) are named in docs/papers.md.

Entry points for other code (TensorFlow is imported only by the modules that need it):

- train: ``tfrs_models.training.strategies.train(load_spec(OUT), RunConfig(...), RUN,
  distribution=None, verbose=1) -> TrainResult`` (configs in ``selling_point.config``);
  CLI ``adpush train sf --model bm|mtdl|amtdl --strategy joint|alternating|pretrain_finetune
  --data OUT --run-dir RUN --seed S``.
- evaluate: ``selling_point.evaluation.evaluate_run(RUN, data_dir=None, oracle_dir=None)``
  → dict, also written to ``RUN/metrics.json`` with ``roc.png`` and ``training_curves.png``;
  CLI ``adpush evaluate --run-dir RUN --data OUT [--oracle LOGS]``.
- serve: ``adpush train sf`` ends with ``tfrs_models.export.prepare_run(RUN)`` →
  ``selling_point.export.prepare_run``: ``RUN/export/saved_model`` (signatures over the SF log's
  raw strings, ``select_selling_points`` among them) + ``RUN/export_info.json``; in code,
  ``model, spec, cfg = training.strategies.load_trained_model(RUN)`` then
  ``selling_point.export.serving_signatures(model, spec)`` / ``save(model, spec, dir)``, or
  ``selling_point.models.prediction_function(model, "sf" | "ad_click")`` over the padded
  pipeline tensors.
"""
