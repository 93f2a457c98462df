"""The build-data job: wiring of the PTransforms per source, and the Python API ``build_data``.

    build_data("taobao", ["UserBehavior.csv"], "out/", BuildConfig(min_count=10))

writes ``out/<dataset>/<split>-SSSSS-of-NNNNN.tfrecord.gz``, ``out/vocab/<vocab>.txt``,
``out/dead_letter/<reason>-SSSSS-of-NNNNN.jsonl``, ``out/spec.json`` and ``out/stats.json``.
"""
from __future__ import annotations

import dataclasses
import glob
import json
import os
import posixpath

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from adpush_core.errors import UserError
from beam_pipelines import features as feature_specs
from beam_pipelines import output_dir
from beam_pipelines.build_cascade_flat import BuildCascadeFlat
from beam_pipelines.build_vocabulary import BuildVocabulary
from beam_pipelines.config import SOURCES, BuildConfig
from beam_pipelines.dead_letter import DEAD_TAG
from beam_pipelines.parse_behaviour_events import ParseBehaviourEvents
from beam_pipelines.parse_lines import READ_TAG, ParseLines, sum_tallies
from beam_pipelines.read_line_batches import ReadLineBatches
from beam_pipelines.sources import aliccp, world
from beam_pipelines.sources.behaviour import WORLD_HEADER
from beam_pipelines.split_by_day import SplitByHash, make_window
from beam_pipelines.write_dead_letters import WriteDeadLetters
from beam_pipelines.write_deterministic_tfrecords import WriteDeterministicTFRecords
from beam_pipelines.write_impression_shards import WriteImpressionShards
from beam_pipelines.write_sequence_shards import WriteSequenceShards
from beam_pipelines.write_spec import WriteSpecAndStats

WORLD_FILES = ("users.csv", "ads.csv", "sf_impressions.csv", "ad_impressions.csv", "behaviour.csv")


def _is_remote(path: str) -> bool:
    return "://" in path


def resolve_inputs(source: str, inputs) -> dict:
    """Check the inputs before the pipeline starts; returns {role: [file patterns]}.

    Raises UserError for an unknown source or a missing local path (remote paths are checked by
    the runner, never at construction time).
    """
    if source not in SOURCES:
        raise UserError(f"unknown source {source!r}; expected one of {', '.join(SOURCES)}")
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    inputs = [str(i) for i in inputs]
    if not inputs:
        raise UserError("no --input given")
    for path in inputs:
        if not _is_remote(path) and not glob.glob(path):
            raise UserError(f"input path {path!r} does not exist")

    def expand(path, names=None):
        if not _is_remote(path) and os.path.isdir(path):
            files = sorted(f for f in glob.glob(os.path.join(path, "*"))
                           if os.path.isfile(f) and not f.endswith((".md", ".json")))
            return files if names is None else [f for f in files if os.path.basename(f) in names]
        return [path]

    if source == "world":
        if len(inputs) != 1:
            raise UserError("--source world takes one --input: the simulate-logs directory")
        root = inputs[0]
        join = posixpath.join if _is_remote(root) else os.path.join
        if not _is_remote(root):
            missing = [n for n in WORLD_FILES if not os.path.isfile(join(root, n))]
            if missing:
                raise UserError(f"{root!r} is not a simulate-logs directory: missing {', '.join(missing)}")
        files = {n.removesuffix(".csv"): [join(root, n)] for n in WORLD_FILES}
        files["manifest"] = join(root, "manifest.json")
        return files
    files = [f for path in inputs for f in expand(path)]
    if source == "taobao":
        return {"behaviour": files}
    skeleton = [f for f in files if "sample_skeleton" in os.path.basename(f)]
    common = [f for f in files if "common_features" in os.path.basename(f)]
    if skeleton or common:
        if not skeleton or not common:
            raise UserError("raw Ali-CCP needs both sample_skeleton_* and common_features_* files")
        return {"skeleton": skeleton, "common_features": common}
    return {"aitm": [f for f in files if f.endswith((".csv", ".csv.gz"))] or files}


def world_manifest_window(path: str):
    """The world's window from ``manifest.json`` (``parameters.world.window_start`` / ``days``);
    None if the manifest is absent or lacks them. Called inside the job (``ReadManifest``), so
    building the pipeline reads nothing: a Dataflow dry run stays offline."""
    from apache_beam.io.filesystems import FileSystems

    try:
        with FileSystems.open(path) as fh:
            world_params = json.loads(fh.read())["parameters"]["world"]
        start, days = int(world_params["window_start"]), int(world_params["days"])
    except Exception:  # noqa: BLE001  (absent or older manifest: fall back to the data)
        return None
    # Days count from the window start, as the logs' day column does (contracts §1), so a
    # 10-day world has 10 days (the UTC midnight before a 16:00 UTC start made it 11).
    return make_window(start, start, start + days * 86400)


def _pick_window(_, manifest_window, data_window):
    return manifest_window if manifest_window is not None else data_window


class _WorldWindow(beam.CombineFn):
    """(start_day, day) pairs -> (window_start_ts, num_days) of the world's logs."""

    def create_accumulator(self):
        return (None, -1)

    def add_input(self, acc, pair):
        start, last = acc
        return (pair[0] if start is None else min(start, pair[0]), max(last, pair[1]))

    def merge_accumulators(self, accs):
        acc = self.create_accumulator()
        for start, last in accs:
            if start is not None:
                acc = self.add_input(acc, (start, last))
        return acc

    def extract_output(self, acc):
        start, last = acc
        start = 0 if start is None else start * 86400
        return make_window(start, start, start + (max(last, 0) + 1) * 86400)


def _sf_start_days(element, manifest_window=None):
    """``(user, [SF impression lines])`` -> ``(first day's Unix day, day index)`` per line
    (nothing when the manifest gave the window)."""
    if manifest_window is not None:
        return []
    _, lines = element
    rows = [world.parse_sf_impression(text)[1] for text in lines]
    return [(ts // 86400 - day, day) for day, ts, *_ in rows]


def _flatten_pairs(element):
    key, rows = element
    return [(key, row) for row in rows]


def _construct_world(p, files, config, out):
    if config.split_seconds != 86400 or config.window_seconds is not None:
        raise UserError("--split_seconds/--window_seconds apply to --source taobao; the world's "
                        "window and days come from its manifest")
    read, dead = [], []

    def parse(name, parser, header, **kwargs):  # noqa: ANN001
        parsed = (p | f"Read_{name}" >> ReadLineBatches(files[name], config.line_batch_size)
                  | f"Parse_{name}" >> ParseLines(parser, header, name=name, **kwargs))
        read.append(parsed[READ_TAG])
        dead.append(parsed[DEAD_TAG])
        return parsed.rows

    profiles = (parse("users", world.parse_user, world.USERS_HEADER, side_table=True)
                | "ProfilePairs" >> beam.FlatMap(_flatten_pairs))
    ads = parse("ads", world.parse_ad, world.ADS_HEADER, side_table=True) | "AdPairs" >> beam.FlatMap(_flatten_pairs)
    profiles_si, ads_si = beam.pvalue.AsDict(profiles), beam.pvalue.AsDict(ads)
    # Impressions are checked against users and ads where they are read (dead letters keep
    # file and line) and are grouped by user as their text lines (see check_sf_impression).
    sf = parse("sf_impressions", world.check_sf_impression, world.SF_HEADER, side_inputs=(profiles_si,))
    ad = parse("ad_impressions", world.check_ad_impression, world.AD_IMPRESSIONS_HEADER,
               side_inputs=(profiles_si, ads_si))
    # The manifest's window, or without one the days the SF impressions cover.
    manifest_window = beam.pvalue.AsSingleton(
        p | "ManifestPath" >> beam.Create([files["manifest"]]) | "ReadManifest" >> beam.Map(world_manifest_window))
    data_window = beam.pvalue.AsSingleton(
        sf
        | "StartDays" >> beam.FlatMap(_sf_start_days, manifest_window)
        | "DataWindow" >> beam.CombineGlobally(_WorldWindow())
    )
    window = beam.pvalue.AsSingleton(
        p | "Once" >> beam.Create([None])
        | "WorldWindow" >> beam.Map(_pick_window, manifest_window, data_window))
    impressions = {"sf": sf, "ad": ad} | "WriteImpressionShards" >> WriteImpressionShards(
        out, window, config, profiles_si, ads_si)
    behaviour = (p | "Read_behaviour" >> ReadLineBatches(files["behaviour"], config.line_batch_size)
                 | "ParseBehaviourEvents" >> ParseBehaviourEvents(window, WORLD_HEADER))
    read.append(behaviour[READ_TAG])
    dead.append(behaviour[DEAD_TAG])
    sequences = behaviour.rows | "WriteSequenceShards" >> WriteSequenceShards(
        out, window, config, profiles_si, ads_si)
    tokens = (impressions.tokens, sequences.tokens) | "AllTokens" >> beam.Flatten()
    datasets = {
        "sf": feature_specs.dataset_spec("sf", feature_specs.sf_features(config), ["clicked"], ["impression_id"]),
        "ad_click": feature_specs.dataset_spec("ad_click", feature_specs.ad_click_features(config),
                                               ["clicked"], ["impression_id"]),
        "sequence": feature_specs.dataset_spec(
            "sequence", feature_specs.sequence_features(config, with_profile=True, with_titles=True),
            ["click", "conversion"], ["user_id", "ts"], proto="tf.train.SequenceExample"),
    }
    return datasets, [], [impressions.summaries, sequences.summaries], tokens, dead, read, window


def _construct_taobao(p, files, config, out):
    start = config.window_start
    window = beam.pvalue.AsSingleton(p | "Window" >> beam.Create(
        [make_window(start, start, start + (config.window_seconds or config.window_days * 86400),
                     config.split_seconds)]))
    parsed = (p | "Read_behaviour" >> ReadLineBatches(files["behaviour"], config.line_batch_size)
              | "ParseBehaviourEvents" >> ParseBehaviourEvents(window))
    sequences = parsed.rows | "WriteSequenceShards" >> WriteSequenceShards(out, window, config)
    datasets = {"sequence": feature_specs.dataset_spec(
        "sequence", feature_specs.sequence_features(config, with_profile=False),
        ["click", "conversion"], ["user_id", "ts"], proto="tf.train.SequenceExample")}
    return datasets, [], [sequences.summaries], sequences.tokens, [parsed[DEAD_TAG]], [parsed[READ_TAG]], window


def _aitm_row(element):
    (path, line_number), (labels, values) = element
    row_id = f"{posixpath.basename(path)}:{line_number}"
    return row_id, (row_id, labels, values)


class _JoinSkeletonFn(beam.DoFn):
    """Skeleton rows + their common features -> ``(row_id, (row_id, labels, {field: id}))``."""

    def process(self, element):
        from apache_beam import pvalue

        from beam_pipelines.dead_letter import dead_letter

        _, groups = element
        commons = sorted(groups["common"], key=lambda c: sorted(c.items()))
        for rows in groups["skeleton"]:
            for (sample_id, labels, own), path, line_number, text in rows:
                if not commons:
                    yield pvalue.TaggedOutput(DEAD_TAG, dead_letter(
                        path, line_number, "unknown_common_feature_index", text))
                    continue
                merged = dict(commons[0])
                merged.update(own)
                values = {f: merged[f][0] for f in aliccp.RAW_FIELDS if f in merged}
                row_id = str(sample_id)
                yield row_id, (row_id, labels, values)


def _construct_aliccp(p, files, config, out):
    read, dead = [], []
    if "aitm" in files:
        fields = aliccp.AITM_FIELDS
        parsed = (p | "Read_aitm" >> ReadLineBatches(files["aitm"], config.line_batch_size)
                  | "ParseAliCcp" >> ParseLines(aliccp.parse_aitm_row, aliccp.AITM_HEADER, name="aliccp",
                                                key_by_position=True))
        read.append(parsed[READ_TAG])
        dead.append(parsed[DEAD_TAG])
        rows = parsed.rows | "RowIds" >> beam.Map(_aitm_row)
    else:
        fields = aliccp.RAW_FIELDS
        skeleton = (p | "Read_skeleton" >> ReadLineBatches(files["skeleton"], config.line_batch_size)
                    | "ParseSkeleton" >> ParseLines(aliccp.parse_skeleton, name="skeleton", attach_position=True))
        common = (p | "Read_common" >> ReadLineBatches(files["common_features"], config.line_batch_size)
                  | "ParseCommonFeatures" >> ParseLines(aliccp.parse_common_features, name="common_features",
                                                        side_table=True))
        read += [skeleton[READ_TAG], common[READ_TAG]]
        joined = ({"skeleton": skeleton.rows,
                   "common": common.rows | "CommonPairs" >> beam.FlatMap(_flatten_pairs)}
                  | "JoinCommonFeatures" >> beam.CoGroupByKey()
                  | "JoinSkeleton" >> beam.ParDo(_JoinSkeletonFn()).with_outputs(DEAD_TAG, main="rows"))
        dead += [skeleton[DEAD_TAG], common[DEAD_TAG], joined[DEAD_TAG]]
        rows = joined.rows
    built = rows | "SplitByHash" >> SplitByHash(config) | "BuildCascadeFlat" >> BuildCascadeFlat(fields)
    datasets = {"cascade_flat": feature_specs.dataset_spec(
        "cascade_flat", feature_specs.cascade_flat_features(fields), ["click", "conversion"], ["row_id"])}
    return datasets, ["cascade_flat"], [built.records], built.tokens, dead, read, None


def construct(p: beam.Pipeline, source: str, inputs, out: str, config: BuildConfig) -> None:
    """Add the whole build-data job for ``source`` to pipeline ``p``."""
    files = resolve_inputs(source, inputs)
    builder = {"world": _construct_world, "taobao": _construct_taobao, "aliccp": _construct_aliccp}[source]
    datasets, generic, outputs, tokens, dead, read, window = builder(p, files, config, out)
    if generic:  # records of the per-impression datasets; `sequence` is written in its shards
        outputs[0] = outputs[0] | "WriteDeterministicTFRecords" >> WriteDeterministicTFRecords(
            out, generic, config.num_shards)
    shard_summaries = tuple(outputs) | "AllShardSummaries" >> beam.Flatten()
    vocab_sizes = tokens | "BuildVocabulary" >> BuildVocabulary(
        out, feature_specs.vocab_names(datasets), config.min_count)
    dead_counts = (tuple(dead) | "AllDeadLetters" >> beam.Flatten()
                   | "WriteDeadLetters" >> WriteDeadLetters(out, config.num_shards))
    read_counts = (tuple(read) | "AllReads" >> beam.Flatten()
                   | "LinesPerFile" >> beam.CombinePerKey(sum_tallies))
    _ = p | "WriteSpecAndStats" >> WriteSpecAndStats(
        out, source, config, datasets, shard_summaries, vocab_sizes, dead_counts, read_counts, window)


@dataclasses.dataclass
class BuildResult:
    out: str
    pipeline: beam.Pipeline
    result: object
    spec: dict | None
    stats: dict | None
    counts: dict | None = None   # the row accounting from the job's counters (None on a dry run)


def pipeline_options(beam_args=()) -> PipelineOptions:
    """Beam options; the runner defaults to FnApiRunner (never the Prism download)."""
    beam_args = list(beam_args)
    if not any(a == "--runner" or a.startswith("--runner=") for a in beam_args):
        beam_args.insert(0, "--runner=FnApiRunner")
    return PipelineOptions(beam_args)


# Inputs at least this large run on one local worker process per core (up to LOCAL_MAX_WORKERS)
# unless the runner or its mode is given: measured on 2 cores, quiet machine, byte-identical
# outputs: the default world (491 MB of logs) 282 s -> 150 s, the demo world (52 MB) 24.9 s ->
# 20.1 s; below this size the workers' start-up is most of the job.
LOCAL_PARALLEL_BYTES = 32 << 20
LOCAL_MAX_WORKERS = 4


def local_parallelism(beam_args, files) -> list[str]:
    """``beam_args`` plus ``--direct_running_mode=multi_processing --direct_num_workers=N`` for a
    local run of at least LOCAL_PARALLEL_BYTES of local input, N = the usable cores (at most
    LOCAL_MAX_WORKERS); unchanged when a runner other than FnApiRunner / DirectRunner, a running
    mode or a worker count is given, on one core, or for remote inputs."""
    beam_args = list(beam_args)
    given = {a.split("=", 1)[0] for a in beam_args if a.startswith("--")}
    if given & {"--direct_running_mode", "--direct_num_workers"}:
        return beam_args
    for a in beam_args:
        if a.startswith("--runner="):
            name = a.split("=", 1)[1].lower().removesuffix("runner")
            if name not in ("fnapi", "direct"):
                return beam_args
    if "--runner" in beam_args:
        return beam_args
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = min(cores, LOCAL_MAX_WORKERS)
    if workers < 2 or any(_is_remote(f) for f in files):
        return beam_args
    size = sum(os.path.getsize(f) for pattern in files for f in glob.glob(pattern) if os.path.isfile(f))
    if size < LOCAL_PARALLEL_BYTES:
        return beam_args
    return beam_args + ["--direct_running_mode=multi_processing", f"--direct_num_workers={workers}"]


def _is_dataflow(options: PipelineOptions) -> bool:
    from apache_beam.options.pipeline_options import StandardOptions

    runner = options.view_as(StandardOptions).runner
    name = runner if isinstance(runner, str) else type(runner).__name__
    return str(name).lower().removesuffix("runner") == "dataflow"


def check_remote_paths(options: PipelineOptions, inputs, out: str) -> None:
    """Dataflow workers read and write only what they can reach: refuse local paths."""
    if not _is_dataflow(options):
        return
    paths = [("--input", str(i)) for i in ([inputs] if isinstance(inputs, (str, os.PathLike)) else inputs)]
    for flag, path in paths + [("--out", out)]:
        if not path.startswith("gs://"):
            raise UserError(f"--runner=DataflowRunner: {flag} {path!r} is a local path, which Dataflow "
                            "workers cannot read or write; copy it to gs:// (gsutil -m cp -r ...) and pass "
                            "the gs:// path")


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
    dry_run = _dry_run(options)
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


# --- checks after the job -----------------------------------------------------------------------
def counts_from_metrics(result) -> dict | None:
    """The job's row accounting from its Beam counters (committed where the runner has them):
    ``{"lines_read", "header_lines", "rejected", "written", "label_events", "side_table_rows",
    "rejected_per_reason"}``; None when the runner reports no metrics."""
    from apache_beam.metrics.metric import MetricsFilter

    from beam_pipelines.dead_letter import METRICS_NAMESPACE
    from beam_pipelines.parse_lines import HEADER_LINES, LABEL_EVENTS, LINES_READ, SIDE_TABLE_ROWS

    try:
        counters = result.metrics().query(MetricsFilter().with_namespace(METRICS_NAMESPACE))["counters"]
    except Exception:  # noqa: BLE001 - a runner without metrics: only stats.json is checked
        return None
    by_name: dict = {}
    for c in counters:
        value = c.committed if c.committed is not None else c.attempted
        by_name[c.key.metric.name] = by_name.get(c.key.metric.name, 0) + int(value or 0)
    per_reason = {n.removeprefix("rejected_"): v for n, v in sorted(by_name.items()) if n.startswith("rejected_")}
    return {
        "lines_read": by_name.get(LINES_READ, 0),
        "header_lines": by_name.get(HEADER_LINES, 0),
        "rejected": sum(per_reason.values()),
        "written": sum(v for n, v in by_name.items() if n.endswith("_written")),
        "label_events": by_name.get(LABEL_EVENTS, 0),
        "side_table_rows": by_name.get(SIDE_TABLE_ROWS, 0),
        "rejected_per_reason": per_reason,
    }


ACCOUNTING = ("header_lines", "rejected", "written", "label_events", "side_table_rows")


def check_rows_conserved(counts: dict, what: str) -> None:
    """Raise UserError unless every line read is a header, a dead letter, an example written, a
    label event or a side-table row (``counts`` as counts_from_metrics or stats.json's
    ``rows_accounting``). Guards against a runner or a step dropping rows silently; it needs
    only counters, so it holds for gs:// outputs and at any scale."""
    accounted = sum(counts[k] for k in ACCOUNTING)
    if counts["lines_read"] != accounted:
        detail = ", ".join(f"{k} {counts[k]}" for k in ACCOUNTING)
        raise UserError(f"build-data lost {counts['lines_read'] - accounted} rows ({what}: read "
                        f"{counts['lines_read']} lines = {detail} does not add up). The output is "
                        "incomplete: rerun it (the default in-memory FnApiRunner) and report the runner "
                        "options used.")


def check_build(source: str, stats: dict, counts: dict | None, out: str) -> None:
    """Every check of a finished build: rows conserved (by the counters and by stats.json), no
    broken input file, not everything (nor a whole file) rejected."""
    from beam_pipelines.dead_letter import FILE_REASONS

    if counts is not None:
        check_rows_conserved(counts, "job counters")
    check_rows_conserved(stats["rows_accounting"], "stats.json")
    per_reason = stats["rows_rejected"]["per_reason"]
    broken = [f for f in stats["rows_rejected"]["files"] if f.split("/")[-1].rsplit("-", 3)[0] in FILE_REASONS]
    if broken:
        raise UserError("build-data: broken input file(s): " + "; ".join(_broken_files(out, broken))
                        + " (the lines before the damage were read; fix or re-upload the file)")
    top = ", ".join(f"{r} {n}" for r, n in sorted(per_reason.items(), key=lambda kv: -kv[1])[:3])
    data_lines = stats["rows_accounting"]["lines_read"] - stats["rows_accounting"]["header_lines"]
    if data_lines and stats["rows_accounting"]["rejected"] == data_lines:
        raise UserError(f"build-data: all {data_lines} rows of --source {source} were rejected ({top}); "
                        "is the input in this source's layout? (README: beam_pipelines, sources)")
    whole = [path for path, t in stats["per_file"].items()
             if t["lines"] - t["header"] > 0 and t["rejected"] == t["lines"] - t["header"]]
    if whole:
        raise UserError(f"build-data: every row of {', '.join(whole)} was rejected ({top}); is it in the "
                        f"{source} layout?")


def _broken_files(out: str, dead_letter_files) -> list[str]:
    """``<input> is <reason> after line N`` for each dead letter of a broken-file reason."""
    from apache_beam.io.filesystems import FileSystems

    found = []
    for relative in dead_letter_files:
        with FileSystems.open(FileSystems.join(out, relative)) as fh:
            for line in fh.read().decode("utf-8").splitlines():
                d = json.loads(line)
                found.append(f"{d['file']} is {d['reason']} after line {d['line_number'] - 1}")
    return sorted(found)


def _dry_run(options: PipelineOptions) -> bool:
    return bool(options.get_all_options().get("dry_run"))
