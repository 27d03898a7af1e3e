"""Run Flyte tasks as SkyPilot managed jobs on any cloud, Kubernetes or Slurm cluster.

.. autosummary::
   SkyPilot
   SkyPilotFunctionTask
   SkyPilotConnector
   SkyPilotYamlTask
   node_info
"""

from .config import SkyPilot
from .connector import SkyPilotConnector, SkyPilotMetadata
from .distributed import NodeInfo, node_info
from .task import SkyPilotFunctionTask
from .yaml_task import SkyPilotYamlTask

__all__ = [
    "NodeInfo",
    "SkyPilot",
    "SkyPilotConnector",
    "SkyPilotFunctionTask",
    "SkyPilotMetadata",
    "SkyPilotYamlTask",
    "node_info",
]
