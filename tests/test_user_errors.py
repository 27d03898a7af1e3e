"""A failed user program's phase comes from its error.pb, as propeller decides for a container task."""

from flyteidl.core import errors_pb2
from flyteidl.core.execution_pb2 import TaskExecution
from flytekit.core.utils import write_proto_to_file

from flytekitplugins.skypilot import user_errors

RECOVERABLE, NON_RECOVERABLE = errors_pb2.ContainerError.RECOVERABLE, errors_pb2.ContainerError.NON_RECOVERABLE


def error_pb(directory, kind, message="boom"):
    directory.mkdir(parents=True, exist_ok=True)
    doc = errors_pb2.ErrorDocument(error=errors_pb2.ContainerError(code="USER:ValueError", message=message, kind=kind))
    write_proto_to_file(doc, str(directory / "error.pb"))


def decide(prefix, num_nodes=1):
    return user_errors.phase_and_message(
        TaskExecution.RETRYABLE_FAILED, "job 7: the task failed", str(prefix), num_nodes
    )


def test_a_recoverable_user_error_is_retried_and_any_other_is_not(tmp_path):
    error_pb(tmp_path / "a", RECOVERABLE, "try again")
    assert decide(tmp_path / "a") == (
        TaskExecution.RETRYABLE_FAILED,
        "job 7: the task failed\n[RECOVERABLE] USER:ValueError: try again",
    )
    error_pb(tmp_path / "b", NON_RECOVERABLE)
    phase, message = decide(tmp_path / "b")
    assert phase == TaskExecution.FAILED and message.endswith("[NON_RECOVERABLE] USER:ValueError: boom")


def test_a_job_that_died_without_an_error_document_is_retryable(tmp_path):
    assert decide(tmp_path) == (TaskExecution.RETRYABLE_FAILED, "job 7: the task failed")


def test_one_node_that_cannot_recover_fails_the_multi_node_task(tmp_path):
    error_pb(tmp_path, RECOVERABLE, "head")
    error_pb(tmp_path / "node-1", NON_RECOVERABLE, "worker")
    phase, message = decide(tmp_path, num_nodes=2)
    assert phase == TaskExecution.FAILED
    assert "node 0: [RECOVERABLE] USER:ValueError: head" in message
    assert "node 1: [NON_RECOVERABLE] USER:ValueError: worker" in message
