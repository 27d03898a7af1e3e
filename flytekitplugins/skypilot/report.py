"""What a finished task's job ran on, for how long, and what that cost, from SkyPilot's own records and prices."""

import re
from typing import Any, Dict, Optional

from . import sky_api

# SkyPilot's resources text: "2x AWS(p4d.24xlarge[Spot], {'A100': 8}, ...)"; "1x[CPU:1+]" where it names no instance.
_RESOURCES = re.compile(r"^(?P<nodes>\d+)x\s*(?P<cloud>[A-Za-z]+)\((?P<instance>[^,\[\)]+)(?P<spot>\[Spot\])?")


def job_report(record: Dict[str, Any]) -> Dict[str, Any]:
    """Placement, duration and cost of a finished managed job (its queue record); cost None where unknown."""
    resources = record.get("cluster_resources_full") or ""
    parsed = _RESOURCES.match(resources)
    report: Dict[str, Any] = {
        "job_id": record.get("job_id"),
        "job_name": record.get("job_name"),
        "status": record.get("status"),
        "infra": record.get("infra"),
        "cloud": record.get("cloud"),
        "region": record.get("region"),
        "zone": record.get("zone"),
        "resources": resources or None,
        "instance_type": parsed["instance"].strip() if parsed else None,
        "spot": bool(parsed and parsed["spot"]),
        "nodes": int(parsed["nodes"]) if parsed else _nodes(resources),
        "job_duration_s": round(float(record.get("job_duration") or 0), 1),
        "recovery_count": int(record.get("recovery_count") or 0),
        "estimated_cost_usd": None,
    }
    price = _price(report)
    if price is not None:
        report["hourly_price_usd"] = price
        report["estimated_cost_usd"] = round(price * report["nodes"] * report["job_duration_s"] / 3600, 4)
    return report


def placement(record: Dict[str, Any]) -> Dict[str, Any]:
    """Where a job is and how long it has run, from its queue record alone (no price lookup): custom_info of
    the phases before the end."""
    return {
        "job_id": record.get("job_id"),
        "job_name": record.get("job_name"),
        "status": record.get("status"),
        "infra": record.get("infra"),
        "resources": record.get("cluster_resources_full") or None,
        "job_duration_s": round(float(record.get("job_duration") or 0), 1),
        "recovery_count": int(record.get("recovery_count") or 0),
    }


def link_name(info: Dict[str, Any], finished: bool) -> str:
    """The log link's name, which Flyte shows in every phase (propeller drops RUNNING's and SUCCEEDED's
    messages): "SkyPilot job 12 (RUNNING on slurm/localcluster)", "SkyPilot job 12: 3m10s on ..., $0.0123"."""
    where = info.get("infra") or info.get("cloud") or "unknown infra"
    if not finished:
        return f"SkyPilot job {info['job_id']} ({info.get('status')} on {where})"
    cost = info.get("estimated_cost_usd")
    price = f"${cost:.4f}" if cost is not None else "cost unknown"
    return f"SkyPilot job {info['job_id']}: {duration(info['job_duration_s'])} on {where}, {price}"


def duration(seconds: float) -> str:
    """3m10s, 1h02m, 45s."""
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def _nodes(resources: str) -> int:
    match = re.match(r"^(\d+)x", resources)
    return int(match.group(1)) if match else 1


def _price(report: Dict[str, Any]) -> Optional[float]:
    if not report["instance_type"] or not report["cloud"]:
        return None
    return sky_api.hourly_price(
        report["cloud"], report["instance_type"], report["spot"], report["region"], report["zone"]
    )


def summary(report: Dict[str, Any]) -> str:
    """One line for the task's final message."""
    where = report["infra"] or report["cloud"] or "unknown infra"
    what = f"{report['resources']}" + (" (spot)" if report["spot"] else "")
    cost = (
        f"~${report['estimated_cost_usd']:.4f}"
        if report["estimated_cost_usd"] is not None
        else "cost unknown (SkyPilot has no price for this infra)"
    )
    return (
        f"ran on {where}, {what}, for {report['job_duration_s']:.0f} s with {report['recovery_count']} "
        f"recover{'y' if report['recovery_count'] == 1 else 'ies'}; {cost}"
    )
