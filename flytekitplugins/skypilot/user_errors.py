"""The user's own errors (error.pb, written by pyflyte-execute on each node) and the Flyte phase they mean.

As in a Flyte container task, the error's kind decides whether Flyte may retry: a FlyteRecoverableException
(kind RECOVERABLE) is retried up to `@task(retries=N)`, any other exception (NON_RECOVERABLE) fails the task
for good. A job that failed without an error document (killed, out of memory) is retryable.
"""

from typing import List, Optional, Tuple

from flyteidl.core import errors_pb2
from flyteidl.core.execution_pb2 import TaskExecution
from flytekit import FlyteContextManager, logger
from flytekit.core.utils import load_proto_from_file

from . import distributed


def phase_and_message(phase: int, message: str, output_prefix: str, num_nodes: int) -> Tuple[int, str]:
    """A failed job's phase and message, with each node's user error and the retry decision it implies."""
    errors: List[errors_pb2.ContainerError] = []
    for rank, prefix in enumerate(distributed.node_prefixes(output_prefix, num_nodes)):
        error = read(prefix)
        if error is not None:
            errors.append(error)
            where = f"node {rank}: " if num_nodes > 1 else ""
            kind = errors_pb2.ContainerError.Kind.Name(error.kind)
            message = f"{message}\n{where}[{kind}] {error.code}: {error.message}"
    if errors:
        recoverable = all(e.kind == errors_pb2.ContainerError.RECOVERABLE for e in errors)
        phase = TaskExecution.RETRYABLE_FAILED if recoverable else TaskExecution.FAILED
    return phase, message


def read(output_prefix: str) -> Optional[errors_pb2.ContainerError]:
    """The error document pyflyte-execute wrote under `output_prefix`, if it wrote one."""
    ctx = FlyteContextManager.current_context()
    remote = f"{output_prefix.rstrip('/')}/error.pb"
    try:
        if not ctx.file_access.exists(remote):
            logger.info(f"no error document at {remote}")
            return None
        local = ctx.file_access.get_random_local_path()
        ctx.file_access.get_data(remote, local)
        return load_proto_from_file(errors_pb2.ErrorDocument, local).error
    except Exception as e:  # the job's own failure is the news; an unreadable error.pb is not
        logger.warning(f"no user error read from {remote}: {e}")
        return None
