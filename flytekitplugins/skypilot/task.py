"""`SkyPilotFunctionTask`: a Python function task whose body runs as a SkyPilot managed job."""

import dataclasses
import os
from pathlib import Path
from typing import Any, Callable, Dict, Optional

from flytekit import FlyteContextManager, PythonFunctionTask
from flytekit.configuration import ImageConfig, SerializationSettings
from flytekit.core.data_persistence import FileAccessProvider
from flytekit.core.tracker import extract_task_module
from flytekit.extend import TaskPlugins
from flytekit.extend.backend.base_connector import AsyncConnectorExecutorMixin

from . import checkpoints, code_bundle, local_loop, shared_fs, sky_api, task_settings
from .config import SkyPilot
from .connector import TASK_TYPE, TASK_TYPE_VERSION


class SkyPilotFunctionTask(AsyncConnectorExecutorMixin, PythonFunctionTask[SkyPilot]):
    """Locally, `execute` submits the task through the connector; inside the job it runs the function."""

    _TASK_TYPE = TASK_TYPE

    def __init__(self, task_config: SkyPilot, task_function: Callable, **kwargs) -> None:
        if not isinstance(task_config, SkyPilot):
            raise TypeError(f"task_config must be SkyPilot(...), not {type(task_config).__name__}")
        super().__init__(
            task_config=task_config,
            task_type=TASK_TYPE,
            task_type_version=TASK_TYPE_VERSION,
            task_function=task_function,
            **kwargs,
        )
        try:  # requests=, accelerator=, interruptible=, secret_requests=, ... honoured or refused, here
            self._task_config, self._secret_env = task_settings.with_flyte_settings(self)
        except ValueError as e:
            raise ValueError(f"Task {self.name}: {e}") from None
        self._run_env: Dict[str, str] = {}

    def get_custom(self, settings: SerializationSettings) -> Dict[str, Any]:
        custom = self.task_config.to_custom()
        if self._secret_env:  # secret_requests: the connector's names, and where flytekit looks in the job
            custom["secrets"] = [*custom["secrets"], *(n for n in self._secret_env if n not in custom["secrets"])]
            custom["secret_env"] = dict(self._secret_env)
        return custom

    def get_container(self, settings: SerializationSettings):
        container = super().get_container(settings)
        if self._run_env:  # a local run on a shared filesystem (see shared_fs)
            container._env = {**(container.env or {}), **self._run_env}
        return container

    def execute(self, **kwargs) -> Any:
        ctx = FlyteContextManager.current_context()
        if ctx.execution_state and ctx.execution_state.is_local_execution():
            return self._submit(**kwargs)
        checkpoints.resume_from_own_checkpoint(ctx)  # inside the managed job, perhaps relaunched by SkyPilot
        return PythonFunctionTask.execute(self, **kwargs)

    def _submit(self, **kwargs) -> Any:
        """A local run: through the connector, with the run's data where the job can reach it. With data in an
        object store the code goes there too (as `pyflyte run --remote` ships it); on a shared filesystem the job
        imports it from the source root."""
        raw = FlyteContextManager.current_context().file_access.raw_output_prefix
        source_root = self._source_root() if shared_fs.local_path(raw) is None else None
        if self.task_config.on_host and shared_fs.shared_dir() is not None:
            self._run_env = shared_fs.host_env(None if source_root else self._source_root())
        try:
            return submit_locally(self, kwargs, source_root)
        finally:
            self._run_env = {}

    def _source_root(self) -> str:
        _, module, _, path = extract_task_module(self)
        return str(Path(path).resolve().parents[module.count(".")]) if path else os.getcwd()


def submit_locally(task: AsyncConnectorExecutorMixin, kwargs: Dict[str, Any], source_root: Optional[str] = None) -> Any:
    """Runs `task` through the connector from a local run, its data where the job can reach it (and its code,
    from `source_root`, in a bundle next to the data)."""
    ctx = FlyteContextManager.current_context()
    builder = ctx.new_builder()
    # a plain local run: Flyte's default image, as for registration
    settings = ctx.serialization_settings or SerializationSettings(image_config=ImageConfig.auto_default_image())
    if source_root:
        fast = code_bundle.fast_settings(source_root, ctx.file_access)
        settings = dataclasses.replace(settings, fast_serialization_settings=fast)
    builder = builder.with_serialization_settings(settings)
    raw = ctx.file_access.raw_output_prefix
    if shared_fs.local_path(raw) is not None:
        if shared_fs.shared_dir() is None:
            raise ValueError(shared_fs.unreachable(raw))
        builder = builder.with_file_access(
            FileAccessProvider(
                local_sandbox_dir=ctx.file_access.local_sandbox_dir,
                raw_output_prefix=shared_fs.run_data_dir(),
                data_config=ctx.file_access.data_config,
            )
        )
    else:  # an object store: the client flytekit opens for it on its local loop is closed at exit
        local_loop.close_at_exit(ctx.file_access, raw)
    try:
        with FlyteContextManager.with_context(builder):
            return AsyncConnectorExecutorMixin.execute(task, **kwargs)
    except sky_api.SkyPilotUnavailable as e:
        raise sky_api.SkyPilotUnavailable(str(e)) from None  # the endpoint and the fix, not event-loop frames


TaskPlugins.register_pythontask_plugin(SkyPilot, SkyPilotFunctionTask)
