"""A selling-point request never fails on a query's wording (issue 16 item 7).

The export derives ``query_category`` from the query text inside the graph. It used a ``Substr``
that failed with 400 ``pos 4 out of range`` on any query without a ``cat_<n>`` token. Generated
query strings (hypothesis) check: the graph splits and reads the category exactly as the Beam job
does (``str.split`` + ``build_sf_examples.query_category``), a missing or unknown category is
padding / OOV, and the exported model answers every query — in process and over REST and gRPC.
"""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tfrs_models  # noqa: F401 - selects Keras 2
from beam_pipelines.build_sf_examples import query_category as beam_query_category
from tfrs_models.selling_point.export import query_category, split_tokens

NAMED = ["shoes", "running shoes", "héllo", "", " ", "cat_", "cat_x", "cat_٣", "cat_²",
         "cat_07 mod_price_1", "mod_price_1 cat_3", "a b c d cat_5", "cat_000", "cat_999999",
         "\u2003cat_4\u00a0x", "\x1ccat_12", "cat_-1", "CAT_3", "cat_3\x00"]
words = st.one_of(st.text(max_size=12), st.from_regex(r"cat_[0-9]{1,4}", fullmatch=True),
                  st.sampled_from(["mod_price_1", "cat_", "shoes", "\u2003", "\t", "\x85"]))
queries = st.one_of(st.sampled_from(NAMED), st.text(max_size=40),
                    st.lists(words, max_size=6).map(" ".join))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(queries, min_size=1, max_size=8))
def test_graph_reads_queries_as_the_beam_job_does(batch):
    got_tokens = split_tokens(tf.constant(batch)).to_list()
    got_category = query_category(tf.constant(batch), 4).numpy().tolist()
    for query, tokens, category in zip(batch, got_tokens, got_category):
        assert [t.decode() for t in tokens] == query.split()
        assert category.decode() == beam_query_category(query.split()[:4])


def test_named_queries_map_to_padding_or_their_category():
    got = [c.decode() for c in query_category(tf.constant(NAMED), 4).numpy()]
    assert dict(zip(NAMED, got)) == {
        **{q: "" for q in NAMED}, "cat_07 mod_price_1": "7", "mod_price_1 cat_3": "3",
        "cat_000": "0", "cat_999999": "999999", "\u2003cat_4\u00a0x": "4", "\x1ccat_12": "12",
        "cat_3\x00": ""}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A few steps of AMTDL (it reads query_category) on the fixture, exported for serving."""
    from selling_point_fixtures import write_dataset

    from serving.export import export_run
    from tfrs_models.export import prepare_run
    from tfrs_models.input import load_spec
    from tfrs_models.selling_point.config import ModelConfig, RunConfig, TrainConfig
    from tfrs_models.training.strategies import train

    root = tmp_path_factory.mktemp("query_wording")
    spec = load_spec(write_dataset(root / "data", seed=2, n_users=12))
    config = RunConfig(data_dir=spec.root,
                       model=ModelConfig(name="amtdl", embedding_dim=4, hidden_units=(8,)),
                       train=TrainConfig(epochs=1, batch_size=64))
    train(spec, config, root / "run", verbose=0)
    prepare_run(root / "run")
    return export_run(root / "run", root / "models", "selling_points")


def _context(queries_batch):
    n = len(queries_batch)
    return {"age_bucket": ["2"] * n, "gender": ["1"] * n, "city_tier": ["3"] * n,
            "activity_level": ["0"] * n, "history_sf_keywords": ["sp_color_01 sp_size_02"] * n,
            "history_ad_title_tokens": ["c01_w02 sp_color_01"] * n, "query": list(queries_batch)}


def test_exported_model_answers_every_query_in_process(exported):
    loaded = tf.saved_model.load(str(exported))
    serve, select = loaded.signatures["serving_default"], loaded.signatures["select_selling_points"]
    names = set(serve.structured_input_signature[1])
    assert {"query", "history_ad_title_tokens"} <= names and "user_id" not in names

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(queries, min_size=1, max_size=6))
    def check(batch):
        context = _context(batch)
        p = serve(**{k: tf.constant(v) for k, v in context.items()},
                  sf_keyword=tf.constant(["sp_color_01"] * len(batch)))["p_sf_click"].numpy()
        assert p.shape == (len(batch),) and np.all((p > 0) & (p < 1))
        out = select(**{k: tf.constant(v) for k, v in context.items()},
                     candidate_selling_points=tf.constant([["sp_color_01", "sp_size_02"]] * len(batch)))
        assert np.all(np.isfinite(out["scores"].numpy()))

    check()
    # a query without a category scores as the same query with an unknown one: both are
    # "no category" to the model (padding vs OOV differ only by the OOV row, untrained here)
    p = serve(**{k: tf.constant(v) for k, v in _context(["shoes", "shoes cat_9999"]).items()},
              sf_keyword=tf.constant(["sp_color_01"] * 2))["p_sf_click"].numpy()
    assert np.all(np.isfinite(p))


def test_rest_and_grpc_answer_every_query(exported):
    from serving.client import GrpcClient, RestClient
    from serving.server_process import ServerProcess

    batches = []

    @settings(max_examples=25, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(queries, min_size=1, max_size=6))
    def collect(batch):
        batches.append(batch)

    collect()
    batches.append(NAMED)
    with ServerProcess(model_name="selling_points", model_base_path=str(exported.parent)) as server:
        rest = RestClient(server.rest_url, "selling_points")
        grpc_client = GrpcClient(server.grpc_target, "selling_points")
        try:
            for batch in batches:
                inputs = {k: np.array(v, dtype=object) for k, v in _context(batch).items()}
                inputs["sf_keyword"] = np.array(["sp_color_01"] * len(batch), dtype=object)
                rest_p = np.asarray(rest.predict(inputs, "serving_default")["p_sf_click"])
                grpc_p = np.asarray(grpc_client.predict(inputs, "serving_default")["p_sf_click"])
                assert rest_p.shape == (len(batch),) and np.all((rest_p > 0) & (rest_p < 1)), batch
                np.testing.assert_allclose(rest_p, grpc_p, atol=1e-6)
        finally:
            rest.close()
            grpc_client.close()
