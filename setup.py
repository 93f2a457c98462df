"""adpush: personalised selling-point keywords for ad titles, built on TensorFlow Recommenders."""
from setuptools import find_packages, setup

PACKAGES = ["adpush_core", "adpush", "beam_pipelines", "tfrs_models", "serving", "abtest"]

setup(
    name="adpush",
    version="0.1.0",
    description=(
        "Learn which selling-point keywords to add to each ad title per user and query; "
        "CTR->CVR multitask models, Beam data jobs, TF Serving export and an A/B simulator."
    ),
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=[p for name in PACKAGES for p in (name, f"{name}.*")]),
    package_data={"adpush": ["defaults/*.toml"],
                  "abtest": ["scenarios/*.toml", "world/configs/*.toml"]},
    install_requires=[
        # TFRS 0.7.7 needs Keras 2: tf-keras with TF_USE_LEGACY_KERAS=1 (see adpush_core/tfenv.py).
        "tensorflow==2.21.*",
        "tf-keras==2.21.*",
        "tensorflow-recommenders==0.7.7",
        # Pulls the full `tensorflow` package: never add tensorflow-cpu next to it.
        "tensorflow-serving-api==2.21.*",
        "apache-beam==2.77.*",
        "pyarrow>=25,<26",  # WriteImpressionShards parses a shard's lines with pyarrow.csv (Beam pulls it too)
        "google-crc32c>=1.5",  # Beam's TFRecord writer needs it
        "numpy>=1.26",
        "scipy>=1.11",
        "matplotlib>=3.8",
        "tqdm>=4.66",
        "grpcio>=1.85,<1.86",  # serving/grpc_service.py drives grpc._cython.cygrpc (a private API)
        "aiohttp>=3.9",  # serving: the local TF-Serving-compatible REST server
        "protobuf>=6.31.1,<8",
        # adpush evaluate: the logistic-regression baseline with hashed crosses
        "scikit-learn>=1.4",
        "pandas>=2.1",  # the baseline's design matrix (pandas.factorize)
    ],
    extras_require={
        # bench/peers.py: the gradient-boosting peers the models are held against.
        "bench": ["lightgbm>=4.6"],
        "dev": [
            "lightgbm>=4.6",  # = .[bench]: CI runs the peer tests
            "pytest>=8",
            "pytest-timeout>=2.3",
            "pytest-xdist>=3.5",
            "statsmodels>=0.14",
            "hypothesis>=6.100",        # property-based tests (abtest analyze)
            "prometheus_client>=0.20",  # the metrics test parses /monitoring/prometheus/metrics
            "apache-beam[gcp]==2.77.*",
        ],
    },
    entry_points={"console_scripts": ["adpush=adpush.cli:main"]},
)
