"""`adpush run` calls each stage through the subcommand's own handler, in a spawned process."""
import pytest

from adpush.stages import RunContext, Stage, _subcommand
from adpush.subcommands import call_subcommand, start_subcommand, wait_subcommand
from adpush_core.errors import UserError


def test_a_stage_process_runs_the_handler_and_writes_its_output_to_the_log(tmp_path):
    log = tmp_path / "logs" / "stage.log"
    ctx = RunContext(run_dir=tmp_path, config={}, seed=0, log=log)
    _subcommand(ctx, "config", "show")
    text = log.read_text()
    assert "[run]" in text and "[train]" in text  # `adpush config show`'s TOML, from the child


def test_a_failing_stage_is_a_user_error_naming_the_command_and_its_log(tmp_path):
    log = tmp_path / "stage.log"
    argv = ["config", "show", "--config", str(tmp_path / "missing.toml")]
    with pytest.raises(UserError, match=r"exit 2\): adpush config show .*its output: .*stage.log"):
        wait_subcommand(start_subcommand(argv, log), argv, log)
    assert "adpush config: error:" in log.read_text() and "missing.toml" in log.read_text()


def test_in_process_call_raises_the_handlers_user_error(tmp_path):
    with pytest.raises(UserError, match="missing.toml"):
        call_subcommand(["config", "show", "--config", str(tmp_path / "missing.toml")])


def test_a_redone_training_starts_afresh_and_an_interrupted_one_keeps_its_checkpoints(tmp_path):
    """A finished stage redone (changed config or --force) deletes its outputs first, so a
    training does not resume from another run's checkpoints; an interrupted one (no marker)
    keeps them and resumes."""
    from adpush import run

    seen = []

    def train(ctx):
        checkpoint = ctx.path("train", "x", "checkpoints", "state.json")
        seen.append(checkpoint.exists())
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        checkpoint.write_text("{}")
        return {}

    stages = (Stage("train_x", "train", ("train",), train, outputs=("train/x",)),)
    ctx = RunContext(run_dir=tmp_path, config={"train": {"epochs": 1}}, seed=0)
    run.run_stages(ctx, stages=stages)
    run.run_stages(ctx, stages=stages)                      # finished, same config: skipped
    ctx.config["train"]["epochs"] = 2
    run.run_stages(ctx, stages=stages)                      # changed config: afresh
    (tmp_path / ".stages" / "train_x.json").unlink()   # as if interrupted after a checkpoint
    run.run_stages(ctx, stages=stages)
    assert seen == [False, False, True]
