"""The build-data job's Python API ``build_data``: inputs checked (``inputs``), runner options
(``runner_options``), the graph per source (``construct``), the run, and the checks after it
(``checks``) before the output is swapped into place (``output_dir``).

    build_data("taobao", ["UserBehavior.csv"], "out/", BuildConfig(min_count=10))

writes ``out/<dataset>/<split>-SSSSS-of-NNNNN.tfrecord.gz``, ``out/vocab/<vocab>.txt``,
``out/dead_letter/<reason>-SSSSS-of-NNNNN.jsonl``, ``out/spec.json`` and ``out/stats.json``.
"""
from __future__ import annotations

import dataclasses

import apache_beam as beam

from adpush_core.errors import UserError
from beam_pipelines import output_dir
from beam_pipelines.checks import check_build, counts_from_metrics
from beam_pipelines.config import BuildConfig
from beam_pipelines.construct import construct
from beam_pipelines.inputs import resolve_inputs
from beam_pipelines.runner_options import (check_remote_paths, is_dry_run, local_parallelism,
                                           pipeline_options)


@dataclasses.dataclass
class BuildResult:
    out: str
    pipeline: beam.Pipeline
    result: object
    spec: dict | None
    stats: dict | None
    counts: dict | None = None   # the row accounting from the job's counters (None on a dry run)


def build_data(source: str, input, out: str, config: BuildConfig | None = None,
               beam_args=(), overwrite: bool = False, **overrides) -> BuildResult:
    """Run build-data and wait for it. ``overrides`` are BuildConfig fields.

    A local ``out`` is built beside itself (``.<name>.build-*``) and swapped into place only when
    the job succeeded and its rows are conserved, so ``out`` always holds one whole build: an
    existing non-empty ``out`` is refused unless ``overwrite`` (then replaced atomically). A
    remote ``out`` with a ``spec.json`` is refused unless ``overwrite``; its spec.json lists the
    exact files of the new build.

    Returns a BuildResult whose ``spec``/``stats`` are the written files (None on a dry run).
    Raises UserError when rows were lost, every row was rejected, or an input file is broken.
    """
    config = dataclasses.replace(config or BuildConfig(), **overrides)
    out = str(out)
    roles = resolve_inputs(source, input)  # fail before the pipeline starts
    beam_args = local_parallelism(beam_args, [f for files in roles.values()
                                              for f in ([files] if isinstance(files, str) else files)])
    options = pipeline_options(beam_args)
    check_remote_paths(options, input, out)
    dry_run = is_dry_run(options)
    target = output_dir.prepare(out, overwrite=overwrite, dry_run=dry_run)
    try:
        p = beam.Pipeline(options=options)
        construct(p, source, input, target.path, config)
        result = p.run()
        result.wait_until_finish()
    except BaseException:
        target.abandon()
        raise
    if dry_run:
        target.abandon()
        return BuildResult(out, p, result, None, None)
    counts = counts_from_metrics(result)
    spec, stats = target.read_json("spec.json"), target.read_json("stats.json")
    try:
        check_build(source, stats, counts, target.path)
    except UserError as err:
        raise UserError(f"{err}\n{target.kept_message(out)}") from None
    target.commit()
    return BuildResult(out, p, result, spec, stats, counts)
