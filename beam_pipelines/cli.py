"""``adpush build-data``: raw logs -> TFRecords, vocabularies, dead letters, spec.json, stats.json.

Options this parser does not know are Beam pipeline options (``--runner=DataflowRunner
--project ... --region ... --temp_location gs://... --setup_file ./setup.py``,
``--direct_running_mode=multi_processing``, ...); they go to PipelineOptions unchanged.
"""
from __future__ import annotations

import argparse


def _fractions(text: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected three comma-separated numbers, got {text!r}") from None
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"expected train,valid,test fractions, got {text!r}")
    return values


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "build-data",
        help="Beam job: raw logs -> TFRecords + vocabularies + spec.json",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--source", required=True, help="world | taobao | aliccp")
    parser.add_argument("--input", required=True, nargs="+",
                        help="world: the simulate-logs directory; taobao/aliccp: files, globs or directories")
    parser.add_argument("--out", required=True, help="output directory (local or gs://)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a non-empty --out (locally: built beside it, swapped in atomically)")
    parser.add_argument("--min_count", type=int, default=10, help="vocabulary minimum count in train (000: 10)")
    parser.add_argument("--split_fractions", type=_fractions, default=(0.5, 0.1, 0.4),
                        help="train,valid,test fractions of the days (000: 0.5,0.1,0.4)")
    parser.add_argument("--test_days", type=int, default=None,
                        help="last N days are test (002); overrides --split_fractions")
    parser.add_argument("--valid_days", type=int, default=1, help="with --test_days: days before test for valid")
    parser.add_argument("--num_shards", type=int, default=4, help="files per dataset and split")
    parser.add_argument("--max_history", type=int, default=50, help="behaviour sequence cap")
    parser.add_argument("--window_start", type=int, default=None,
                        help="taobao window start, Unix seconds (default 2017-11-25 00:00 +08:00)")
    parser.add_argument("--window_days", type=int, default=None, help="taobao window length in days (default 9)")
    parser.add_argument("--window_seconds", type=int, default=None,
                        help="taobao window length in seconds (overrides --window_days)")
    parser.add_argument("--split_seconds", type=int, default=None,
                        help="taobao split period in seconds (default a day: 86400)")
    parser.add_argument("--seed", type=int, default=0, help="salt of the hash split (aliccp)")
    parser.set_defaults(func=_run, beam_args=[])
    # Unknown options are Beam's: keep them instead of letting the top-level parser reject them.
    parse_known = parser.parse_known_args

    def parse_known_args(args=None, namespace=None):
        namespace, extras = parse_known(args, namespace)
        namespace.beam_args = list(namespace.beam_args) + list(extras)
        return namespace, []

    parser.parse_known_args = parse_known_args


def _run(args) -> int:
    import dataclasses

    from beam_pipelines.config import BuildConfig
    from beam_pipelines.pipeline import build_data

    overrides = {k: getattr(args, k) for k in ("window_start", "window_days", "window_seconds", "split_seconds")
                 if getattr(args, k) is not None}
    config = BuildConfig(min_count=args.min_count, split_fractions=tuple(args.split_fractions),
                         test_days=args.test_days, valid_days=args.valid_days,
                         num_shards=args.num_shards, max_history=args.max_history, seed=args.seed)
    config = dataclasses.replace(config, **overrides)
    result = build_data(args.source, args.input, args.out, config, beam_args=args.beam_args,
                        overwrite=args.overwrite)
    if result.stats is not None:
        stats = result.stats
        written = ", ".join(f"{d} {sum(s.values())}" for d, s in stats["rows_written"].items())
        print(f"build-data: read {stats['rows_read']['total']} lines, rejected "
              f"{stats['rows_rejected']['total']} (see {args.out}/dead_letter), wrote {written}; "
              f"spec: {args.out}/spec.json")
    else:
        print(f"build-data: pipeline submitted/translated ({result.result.state})")
    return 0
