"""Run Flyte tasks as SkyPilot managed jobs on any cloud, Kubernetes or Slurm cluster.

.. autosummary::
   SkyPilot
   SkyPilotFunctionTask
   SkyPilotConnector
"""

from .config import SkyPilot
from .connector import SkyPilotConnector, SkyPilotMetadata
from .task import SkyPilotFunctionTask

__all__ = ["SkyPilot", "SkyPilotConnector", "SkyPilotFunctionTask", "SkyPilotMetadata"]
