"""Runner options of build-data: FnApiRunner by default, one local worker process per core for
large local inputs, Dataflow only with gs:// paths, and dry runs."""
from __future__ import annotations

import glob
import os

from apache_beam.options.pipeline_options import PipelineOptions

from adpush_core.errors import UserError
from beam_pipelines.inputs import is_remote


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
    if workers < 2 or any(is_remote(f) for f in files):
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


def is_dry_run(options: PipelineOptions) -> bool:
    return bool(options.get_all_options().get("dry_run"))
