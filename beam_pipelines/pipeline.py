"""The build-data job: wiring of the PTransforms per source, and the Python API ``build_data``.

    build_data("taobao", ["UserBehavior.csv"], "out/", BuildConfig(min_count=10))

writes ``out/<dataset>/<split>-SSSSS-of-NNNNN.tfrecord.gz``, ``out/vocab/<vocab>.txt``,
``out/dead_letter/<reason>.jsonl``, ``out/spec.json`` and ``out/stats.json``.
"""
from __future__ import annotations

import dataclasses
import glob
import json
import os
import posixpath

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from adpush.errors import UserError
from beam_pipelines import features as feature_specs
from beam_pipelines.build_cascade_flat import BuildCascadeFlat
from beam_pipelines.build_vocabulary import BuildVocabulary
from beam_pipelines.config import SOURCES, BuildConfig
from beam_pipelines.dead_letter import DEAD_TAG
from beam_pipelines.parse_behaviour_events import ParseBehaviourEvents
from beam_pipelines.parse_lines import READ_TAG, ParseLines
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
    """The world's window from ``manifest.json`` (``parameters.world.window_start`` / ``days``),
    read when the pipeline is built; None if the manifest is absent or lacks them."""
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


def _sf_start_days(element):
    """``(user, [SF impression lines])`` -> ``(first day's Unix day, day index)`` per line."""
    _, lines = element
    rows = [world.parse_sf_impression(text)[1] for text in lines]
    return [(ts // 86400 - day, day) for day, ts, *_ in rows]


def _flatten_pairs(element):
    key, rows = element
    return [(key, row) for row in rows]


def _construct_world(p, files, config, out):
    read, dead = [], []

    def parse(name, parser, header, **kwargs):
        parsed = (p | f"Read_{name}" >> ReadLineBatches(files[name], config.line_batch_size)
                  | f"Parse_{name}" >> ParseLines(parser, header, name=name, **kwargs))
        read.append(parsed[READ_TAG])
        dead.append(parsed[DEAD_TAG])
        return parsed.rows

    profiles = parse("users", world.parse_user, world.USERS_HEADER) | "ProfilePairs" >> beam.FlatMap(_flatten_pairs)
    ads = parse("ads", world.parse_ad, world.ADS_HEADER) | "AdPairs" >> beam.FlatMap(_flatten_pairs)
    profiles_si, ads_si = beam.pvalue.AsDict(profiles), beam.pvalue.AsDict(ads)
    # Impressions are checked against users and ads where they are read (dead letters keep
    # file and line) and are grouped by user as their text lines (see check_sf_impression).
    sf = parse("sf_impressions", world.check_sf_impression, world.SF_HEADER, side_inputs=(profiles_si,))
    ad = parse("ad_impressions", world.check_ad_impression, world.AD_IMPRESSIONS_HEADER,
               side_inputs=(profiles_si, ads_si))
    manifest_window = world_manifest_window(files["manifest"])
    if manifest_window is not None:
        window = beam.pvalue.AsSingleton(p | "WorldWindow" >> beam.Create([manifest_window]))
    else:  # no manifest: the days the SF impressions cover
        window = beam.pvalue.AsSingleton(
            sf
            | "StartDays" >> beam.FlatMap(_sf_start_days)
            | "WorldWindow" >> beam.CombineGlobally(_WorldWindow())
        )
    impressions = {"sf": sf, "ad": ad} | "WriteImpressionShards" >> WriteImpressionShards(
        out, window, config, profiles_si, ads_si)
    behaviour = (p | "Read_behaviour" >> ReadLineBatches(files["behaviour"], config.line_batch_size)
                 | "ParseBehaviourEvents" >> ParseBehaviourEvents(window, WORLD_HEADER))
    read.append(behaviour[READ_TAG])
    dead.append(behaviour[DEAD_TAG])
    sequences = behaviour.rows | "WriteSequenceShards" >> WriteSequenceShards(out, window, config, profiles_si)
    tokens = (impressions.tokens, sequences.tokens) | "AllTokens" >> beam.Flatten()
    datasets = {
        "sf": feature_specs.dataset_spec("sf", feature_specs.sf_features(config), ["clicked"], ["impression_id"]),
        "ad_click": feature_specs.dataset_spec("ad_click", feature_specs.ad_click_features(config),
                                               ["clicked"], ["impression_id"]),
        "sequence": feature_specs.dataset_spec(
            "sequence", feature_specs.sequence_features(config, with_profile=True),
            ["click", "conversion"], ["user_id", "ts"], proto="tf.train.SequenceExample"),
    }
    return datasets, [], [impressions.summaries, sequences.summaries], tokens, dead, read, window


def _construct_taobao(p, files, config, out):
    start = config.window_start
    window = beam.pvalue.AsSingleton(p | "Window" >> beam.Create(
        [make_window(start, start, start + config.window_days * 86400)]))
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
                  | "ParseCommonFeatures" >> ParseLines(aliccp.parse_common_features, name="common_features"))
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
    dead_counts = tuple(dead) | "AllDeadLetters" >> beam.Flatten() | "WriteDeadLetters" >> WriteDeadLetters(out)
    read_counts = (tuple(read) | "AllReads" >> beam.Flatten()
                   | "LinesPerFile" >> beam.CombinePerKey(sum))
    _ = p | "WriteSpecAndStats" >> WriteSpecAndStats(
        out, source, config, datasets, shard_summaries, vocab_sizes, dead_counts, read_counts, window)


@dataclasses.dataclass
class BuildResult:
    out: str
    pipeline: beam.Pipeline
    result: object
    spec: dict | None
    stats: dict | None


def pipeline_options(beam_args=()) -> PipelineOptions:
    """Beam options; the runner defaults to FnApiRunner (never the Prism download)."""
    beam_args = list(beam_args)
    if not any(a == "--runner" or a.startswith("--runner=") for a in beam_args):
        beam_args.insert(0, "--runner=FnApiRunner")
    return PipelineOptions(beam_args)


def build_data(source: str, input, out: str, config: BuildConfig | None = None,
               beam_args=(), **overrides) -> BuildResult:
    """Run build-data and wait for it. ``overrides`` are BuildConfig fields.

    Returns a BuildResult whose ``spec``/``stats`` are the written files (None on a dry run).
    """
    config = dataclasses.replace(config or BuildConfig(), **overrides)
    out = str(out)
    resolve_inputs(source, input)  # fail before the pipeline starts
    if not _is_remote(out):
        os.makedirs(out, exist_ok=True)
    options = pipeline_options(beam_args)
    p = beam.Pipeline(options=options)
    construct(p, source, input, out, config)
    result = p.run()
    result.wait_until_finish()
    spec = stats = None
    if not _is_remote(out) and os.path.exists(os.path.join(out, "spec.json")) and not _dry_run(options):
        with open(os.path.join(out, "spec.json")) as fh:
            spec = json.load(fh)
        with open(os.path.join(out, "stats.json")) as fh:
            stats = json.load(fh)
        check_rows_conserved(source, stats, out)
    return BuildResult(out, p, result, spec, stats)


# Which input file becomes which dataset one row for one example (world source, contracts §1).
ONE_TO_ONE = {"world": {"sf_impressions.csv": "sf", "ad_impressions.csv": "ad_click"}}


def check_rows_conserved(source: str, stats: dict, out: str) -> None:
    """Raise UserError when impression rows were read but neither written nor dead-lettered.

    Every impression line of the world's logs becomes one example or one dead letter, so
    ``written + rejected >= read - header`` must hold (``rejected`` counts every file's dead
    letters, so this never fires falsely). It guards against a runner dropping data silently.
    """
    mapping = ONE_TO_ONE.get(source)
    if not mapping:
        return
    read = {os.path.basename(path): n for path, n in stats["rows_read"]["per_file"].items()}
    expected = written = 0
    for name, dataset in mapping.items():
        if name in read and dataset in stats["rows_written"]:
            expected += read[name] - 1  # header line
            written += sum(stats["rows_written"][dataset].values())
    lost = expected - written - stats["rows_rejected"]["total"]
    if lost > 0:
        detail = ", ".join(f"{name}: {read.get(name, 0) - 1} rows -> {dataset} "
                           f"{sum(stats['rows_written'].get(dataset, {}).values())} examples"
                           for name, dataset in mapping.items())
        raise UserError(f"build-data lost {lost} rows ({detail}; {stats['rows_rejected']['total']} "
                        f"dead-lettered); {out}/stats.json has the counts. The output is incomplete: "
                        "rerun it (the default in-memory FnApiRunner) and report the runner options used.")


def _dry_run(options: PipelineOptions) -> bool:
    return bool(options.get_all_options().get("dry_run"))
