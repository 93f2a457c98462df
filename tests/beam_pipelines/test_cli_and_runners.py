"""`adpush build-data` registration, errors before the pipeline starts, Dataflow dry run offline,
and the pipeline's portable proto on FnApiRunner."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from adpush_core.errors import UserError
from beam_pipelines.pipeline import build_data
from beam_test_helpers import tree_digest

REPO = Path(__file__).resolve().parents[2]
HEAD = "taobao_user_behavior/UserBehavior_usersorted_head_4321.csv"


def test_cli_keeps_beam_options_and_seed():
    from adpush.cli import build_parser

    args = build_parser().parse_args([
        "build-data", "--source", "taobao", "--input", "a.csv", "b.csv", "--out", "o",
        "--runner=DataflowRunner", "--project=my-project-123", "--seed", "3", "--test_days", "1",
        "--split_fractions", "0.6,0.2,0.2"])
    assert args.beam_args == ["--runner=DataflowRunner", "--project=my-project-123"]
    assert (args.seed, args.test_days, args.input, args.split_fractions) == (3, 1, ["a.csv", "b.csv"], (0.6, 0.2, 0.2))


def test_cli_module_import_is_light():
    code = "import sys, beam_pipelines.cli; assert 'apache_beam' not in sys.modules and 'tensorflow' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


@pytest.mark.parametrize("source,inputs,message", [
    ("bogus", ["x"], "unknown source"),
    ("taobao", ["/nonexistent/UserBehavior.csv"], "does not exist"),
    ("world", ["."], "not a simulate-logs directory"),
])
def test_user_errors_before_the_pipeline_starts(tmp_path, source, inputs, message):
    with pytest.raises(UserError, match=message):
        build_data(source, inputs, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cli_main_reports_user_error(capsys, tmp_path):
    from adpush.cli import main

    assert main(["build-data", "--source", "nope", "--input", "x", "--out", str(tmp_path)]) == 2
    assert "unknown source 'nope'" in capsys.readouterr().err


def test_dataflow_dry_run_translates_offline(tmp_path):
    result = build_data(
        "taobao", ["gs://my-bucket/taobao/UserBehavior.csv"], "gs://my-bucket/out",
        beam_args=["--runner=DataflowRunner", "--project=my-project-123", "--region=us-central1",
                   "--temp_location=gs://my-bucket/tmp", f"--setup_file={REPO / 'setup.py'}",
                   "--dry_run=True", "--no_auth", "--sdk_location=container"])
    assert result.spec is None
    proto = result.pipeline.runner.proto_pipeline
    names = {t.unique_name for t in proto.components.transforms.values()}
    for step in ("Read_behaviour", "ParseBehaviourEvents", "WriteSequenceShards", "BuildVocabulary",
                 "WriteDeadLetters", "WriteSpecAndStats"):
        assert step in names
    envs = [e.payload for e in proto.components.environments.values()]
    assert any(b"beam_python3.11_sdk" in payload for payload in envs)


def test_portable_proto_runs_on_fnapirunner(shared_data_dir, tmp_path):
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.portability.api import beam_runner_api_pb2
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner
    from apache_beam.transforms.environments import EmbeddedPythonEnvironment

    from beam_pipelines.config import BuildConfig
    from beam_pipelines.construct import construct

    data = str(shared_data_dir / HEAD)
    via_proto, direct = tmp_path / "proto", tmp_path / "direct"
    p = beam.Pipeline(options=PipelineOptions())
    construct(p, "taobao", [data], str(via_proto), BuildConfig())
    proto = p.to_runner_api(default_environment=EmbeddedPythonEnvironment.default())
    proto = beam_runner_api_pb2.Pipeline.FromString(proto.SerializeToString())
    FnApiRunner().run_via_runner_api(proto, PipelineOptions()).wait_until_finish()
    build_data("taobao", [data], direct)
    assert tree_digest(via_proto) == tree_digest(direct)
    assert "spec.json" in tree_digest(direct)
