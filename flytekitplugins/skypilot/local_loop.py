"""The object-store clients of a local run, closed when the run's process exits.

flytekit runs a local connector task on its own event loop (`base_connector.local_connector_loop`), and the
object store's asynchronous filesystem (s3fs) opens its client, an aiohttp session, on that loop (to upload
the inputs and read the outputs). s3fs closes such a client only on a loop that is still running; that loop
never runs again after the task, so at exit aiohttp reports an unclosed client session. This closes them on
that loop, before the interpreter tears it down."""

import atexit
from typing import Dict

from flytekit.core.data_persistence import FileAccessProvider
from flytekit.extend.backend import base_connector

_stores: Dict[int, tuple] = {}  # id(file access) -> (file access, a path in its store)


def close_at_exit(file_access: FileAccessProvider, path: str) -> None:
    """Closes, at exit, the client `file_access` opens for `path`'s store on the local connector loop."""
    if not _stores:
        atexit.register(close_store_clients)
    _stores.setdefault(id(file_access), (file_access, path))


def close_store_clients() -> int:
    """Closes the local connector loop's object-store clients; how many were open."""
    loop = base_connector.local_connector_loop
    if loop.is_closed() or loop.is_running():
        return 0

    async def close_all() -> int:
        closed = 0
        for file_access, path in list(_stores.values()):
            # the instance flytekit used: fsspec caches one per store settings and loop
            store = await file_access.get_async_filesystem_for_path(path)
            client = getattr(store, "_s3", None)  # s3fs: its aiobotocore client, once it connected
            if client is not None:
                await client.close()
                closed += 1
        return closed

    return loop.run_until_complete(close_all())
