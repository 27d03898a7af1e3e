"""Multi-node PyTorch DDP: two nodes of eight GPUs, torchrun on each, the head node's result as the output.

    pyflyte run --remote examples/ddp.py ddp_wf --epochs 2

Every node runs the task's function. SkyPilot gives each its rank and the nodes' addresses; the job also
exports MASTER_ADDR, MASTER_PORT, WORLD_SIZE (nodes) and NODE_RANK, so torchrun is called as usual. Only
node 0's return value becomes the task's output; a failure on any node fails the task.
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from flytekit import task, workflow

from flytekitplugins.skypilot import SkyPilot, node_info

TRAIN = """
import torch, torch.distributed as dist
dist.init_process_group("nccl")
rank, world = dist.get_rank(), dist.get_world_size()
torch.cuda.set_device(int(__import__("os").environ["LOCAL_RANK"]))
model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(1024, 1024).cuda())
opt = torch.optim.SGD(model.parameters(), lr=0.01)
for _ in range(int(__import__("sys").argv[1]) * 100):
    loss = model(torch.randn(64, 1024, device="cuda")).pow(2).mean()
    opt.zero_grad(); loss.backward(); opt.step()
if rank == 0:
    print(f"LOSS {loss.item():.6f} WORLD {world}")
dist.destroy_process_group()
"""


@task(
    task_config=SkyPilot(accelerators="H100:8", num_nodes=2, network_tier="best"),
    container_image="nvcr.io/nvidia/pytorch:24.05-py3",
)
def train(epochs: int) -> str:
    node = node_info()
    script = Path(tempfile.mkdtemp()) / "train_ddp.py"
    script.write_text(TRAIN)
    out = subprocess.run(
        [
            "torchrun",
            f"--nnodes={os.environ['WORLD_SIZE']}",
            f"--node_rank={os.environ['NODE_RANK']}",
            f"--nproc_per_node={node.gpus_per_node}",
            f"--master_addr={os.environ['MASTER_ADDR']}",
            f"--master_port={os.environ['MASTER_PORT']}",
            str(script),
            str(epochs),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    sys.stdout.write(out)
    return next((line for line in out.splitlines() if line.startswith("LOSS")), "no result on this node")


@workflow
def ddp_wf(epochs: int = 2) -> str:
    return train(epochs=epochs)
