"""Placement, duration and cost of finished jobs, from SkyPilot records (as queue_v2 returns them) and prices."""

import json
import os
import subprocess
import sys

from flytekitplugins.skypilot.report import job_report, summary

SLURM = {
    "job_id": 3,
    "infra": "Slurm (localcluster)",
    "cloud": "Slurm",
    "region": "localcluster",
    "zone": "debug",
    "cluster_resources_full": "2x[CPU:1+]",
    "job_duration": 21.2,
    "recovery_count": 0,
}
LAMBDA = {
    "job_id": 7,
    "infra": "Lambda (us-east-1)",
    "cloud": "Lambda",
    "region": "us-east-1",
    "zone": None,
    "cluster_resources_full": "2x Lambda(gpu_8x_h100_sxm5, {'H100': 8})",
    "job_duration": 1800.0,
    "recovery_count": 1,
}
# SkyPilot's Lambda catalog format, two rows of it: the price the estimate must use.
CATALOG = """InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,Price,Region,GpuInfo,SpotPrice
gpu_1x_a100_sxm4,A100,1.0,30.0,200.0,1.29,us-east-1,,
gpu_8x_h100_sxm5,H100,8.0,208.0,1800.0,23.92,us-east-1,,
"""


def test_infra_without_prices_reports_the_cost_as_unknown():
    report = job_report(SLURM)
    assert (report["infra"], report["nodes"], report["job_duration_s"], report["recovery_count"]) == (
        "Slurm (localcluster)",
        2,
        21.2,
        0,
    )
    assert report["estimated_cost_usd"] is None and report["instance_type"] is None
    assert summary(report) == (
        "ran on Slurm (localcluster), 2x[CPU:1+], for 21 s with 0 recoveries; "
        "cost unknown (SkyPilot has no price for this infra)"
    )


def test_priced_infra_costs_nodes_times_hourly_price_times_duration(tmp_path):
    catalog = tmp_path / ".sky" / "catalogs" / "v8" / "lambda" / "vms.csv"
    catalog.parent.mkdir(parents=True)
    catalog.write_text(CATALOG)  # fresh, so SkyPilot reads it instead of fetching its hosted catalog
    code = (
        "import json, sys; from flytekitplugins.skypilot.report import job_report, summary; "
        "r = job_report(json.loads(sys.argv[1])); print(json.dumps([r, summary(r)]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(LAMBDA)],
        env={**os.environ, "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    report, line = json.loads(out.strip().splitlines()[-1])
    assert report["instance_type"] == "gpu_8x_h100_sxm5" and report["hourly_price_usd"] == 23.92
    assert report["estimated_cost_usd"] == 23.92  # 2 nodes x $23.92/h x 0.5 h
    assert line.endswith("for 1800 s with 1 recovery; ~$23.9200")


def test_spot_and_instance_are_read_from_skypilots_resources_text():
    report = job_report({**LAMBDA, "cloud": None, "cluster_resources_full": "1x AWS(p4d.24xlarge[Spot], {'A100': 8})"})
    assert (report["instance_type"], report["spot"], report["nodes"]) == ("p4d.24xlarge", True, 1)
    assert report["estimated_cost_usd"] is None  # no cloud in the record: no price looked up
