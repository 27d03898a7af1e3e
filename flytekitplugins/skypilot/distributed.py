"""Where a multi-node task's function runs: its node's rank, the node count and the head node's address.

SkyPilot gives every node of a `num_nodes=N` job `SKYPILOT_NODE_RANK`, `SKYPILOT_NODE_IPS` (one address per
line, the head first), `SKYPILOT_NUM_NODES` and `SKYPILOT_NUM_GPUS_PER_NODE`. The job's command also exports
the conventional names `torch.distributed` / `torchrun` read: `MASTER_ADDR` (the head node), `MASTER_PORT`
(29500 unless set in `envs`), `WORLD_SIZE` (the node count), `NODE_RANK` and `RANK` (this node's rank):
one process per node as written; for one process per GPU, hand them to
`torchrun --nnodes $WORLD_SIZE --node_rank $NODE_RANK --master_addr $MASTER_ADDR --master_port $MASTER_PORT`.
"""

import os
import shlex
from dataclasses import dataclass
from typing import List

DEFAULT_MASTER_PORT = 29500


@dataclass(frozen=True)
class NodeInfo:
    rank: int  # 0 on the head node
    num_nodes: int
    ips: List[str]  # every node's address, the head node's first
    gpus_per_node: int

    @property
    def head_ip(self) -> str:
        return self.ips[0]

    @property
    def is_head(self) -> bool:
        """Only the head node's return value becomes the task's outputs."""
        return self.rank == 0


def node_info() -> NodeInfo:
    """This node's place in the job (a single node on 127.0.0.1 outside a SkyPilot job)."""
    ips = [ip for ip in os.environ.get("SKYPILOT_NODE_IPS", "").split() if ip] or ["127.0.0.1"]
    return NodeInfo(
        rank=int(os.environ.get("SKYPILOT_NODE_RANK", "0")),
        num_nodes=int(os.environ.get("SKYPILOT_NUM_NODES", str(len(ips)))),
        ips=ips,
        gpus_per_node=int(os.environ.get("SKYPILOT_NUM_GPUS_PER_NODE", "0") or 0),
    )


def run_command(args: List[str]) -> str:
    """The `run:` of a multi-node job: the conventional variables, then the task's command on every node.

    Nodes other than the head write their outputs (and error.pb) under `<output prefix>/node-<rank>`, so the
    head node's return value alone becomes the task's outputs; any node's failure fails the job. Each node
    checkpoints under its own `<checkpoint path>/node-<rank>` (the head at the path itself).
    """
    other = list(args)
    rank_suffix = '/node-"$SKYPILOT_NODE_RANK"'
    quoted = [shlex.quote(a) for a in other]
    for flag in ("--output-prefix", "--checkpoint-path"):  # each node's own outputs and checkpoints
        if flag in other:
            i = other.index(flag) + 1
            quoted[i] = shlex.quote(other[i].rstrip("/")) + rank_suffix
    return "\n".join(
        [
            'export MASTER_ADDR="$(printf "%s\\n" "$SKYPILOT_NODE_IPS" | head -n1)"',
            f'export MASTER_PORT="${{MASTER_PORT:-{DEFAULT_MASTER_PORT}}}"',
            'export WORLD_SIZE="$SKYPILOT_NUM_NODES" NODE_RANK="$SKYPILOT_NODE_RANK" RANK="$SKYPILOT_NODE_RANK"',
            'if [ "$SKYPILOT_NODE_RANK" = 0 ]; then',
            f"  exec {shlex.join(args)}",
            "else",
            f"  exec {' '.join(quoted)}",
            "fi",
        ]
    )


def node_prefixes(output_prefix: str, num_nodes: int) -> List[str]:
    """Where each node writes outputs.pb / error.pb: the head node at the prefix, node k under node-k."""
    base = output_prefix.rstrip("/")
    return [base] + [f"{base}/node-{k}" for k in range(1, num_nodes)]
