"""The build-data job's graph: the PTransforms wired per source (world, taobao, aliccp) and the
shared tail (TFRecords, vocabularies, dead letters, spec.json and stats.json)."""
from __future__ import annotations

import json
import posixpath

import apache_beam as beam

from adpush_core.errors import UserError
from beam_pipelines import features as feature_specs
from beam_pipelines.build_cascade_flat import BuildCascadeFlat
from beam_pipelines.build_vocabulary import BuildVocabulary
from beam_pipelines.config import BuildConfig
from beam_pipelines.dead_letter import DEAD_TAG
from beam_pipelines.inputs import resolve_inputs
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
