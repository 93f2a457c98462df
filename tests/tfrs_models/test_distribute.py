"""tfrs_models.training.distribute: TF_CONFIG checks, who writes, input sharding (one process)."""
from __future__ import annotations

import json

import pytest

from adpush_core.errors import UserError
from adpush_core.tfenv import import_tensorflow
from tfrs_models.training.distribute import (TF_CONFIG, global_batches, is_chief, make_strategy,
                                             parse_tf_config, write_dir)

TWO_WORKERS = {"cluster": {"worker": ["localhost:1", "localhost:2"]}}


def _config(**task) -> str:
    return json.dumps({**TWO_WORKERS, "task": task})


def test_worker_zero_is_the_chief_of_a_cluster_without_one():
    first, second = parse_tf_config(_config(type="worker", index=0)), parse_tf_config(
        _config(type="worker", index=1))
    assert (first.is_chief, second.is_chief) == (True, False)
    assert first.workers == ("localhost:1", "localhost:2") and first.chief == ()


def test_a_named_chief_is_the_only_chief():
    text = {"cluster": {"chief": ["localhost:0"], "worker": ["localhost:1"]}}
    chief = parse_tf_config(json.dumps({**text, "task": {"type": "chief", "index": 0}}))
    worker = parse_tf_config(json.dumps({**text, "task": {"type": "worker", "index": 0}}))
    assert (chief.is_chief, worker.is_chief, chief.chief) == (True, False, ("localhost:0",))


@pytest.mark.parametrize("text, words", [
    (None, "needs the TF_CONFIG environment variable"),
    ("{not json", "TF_CONFIG is not JSON"),
    (json.dumps({"cluster": {"worker": ["a:1"]}}), 'needs a "cluster" object and a "task"'),
    (json.dumps({"cluster": {"ps": ["a:1"], "worker": ["a:2"]}, "task": {"type": "worker"}}),
     "jobs ['ps']"),
    (json.dumps({"cluster": {"worker": "a:1"}, "task": {"type": "worker", "index": 0}}),
     'cluster "worker" must be a list'),
    (json.dumps({"cluster": {"worker": []}, "task": {"type": "worker", "index": 0}}),
     "lists no workers"),
    (_config(type="worker", index=2), "is not in the cluster"),
    (_config(type="chief", index=0), "is not in the cluster"),
])
def test_a_bad_tf_config_is_a_user_error_naming_it(text, words):
    with pytest.raises(UserError, match="TF_CONFIG") as err:
        parse_tf_config(text)
    assert words in str(err.value)


def test_multi_worker_without_tf_config_fails_before_tensorflow(monkeypatch):
    monkeypatch.delenv(TF_CONFIG, raising=False)
    with pytest.raises(UserError, match="TF_CONFIG"):
        make_strategy("multi_worker")
    with pytest.raises(UserError, match="--distribution must be one of none, mirrored, "
                                        "multi_worker, got 'ring'"):
        make_strategy("ring")


def test_none_is_the_default_strategy_and_writes_the_run():
    tf = import_tensorflow()

    strategy = make_strategy("none")
    assert strategy is tf.distribute.get_strategy()
    assert strategy.num_replicas_in_sync == 1 and is_chief(strategy)


def test_the_chief_writes_the_run_and_the_others_a_deleted_temporary_directory(tmp_path):
    run = tmp_path / "run" / "checkpoints"
    with write_dir(run, chief=True) as where:
        (where / "a").write_text("x")
    assert where == run and (run / "a").read_text() == "x"
    with write_dir(tmp_path / "other" / "checkpoints", chief=False) as where:
        (where / "a").write_text("x")
        assert where.exists() and tmp_path not in where.parents
    assert not where.exists() and not (tmp_path / "other").exists()


def test_global_batches_asks_for_data_sharding():
    tf = import_tensorflow()

    dataset = global_batches(tf.data.Dataset.range(4).batch(2))
    policy = dataset.options().experimental_distribute.auto_shard_policy
    assert policy == tf.data.experimental.AutoShardPolicy.DATA
    assert [list(map(int, b)) for b in dataset] == [[0, 1], [2, 3]]
