"""A local run's code, as `pyflyte run --remote` ships it: one tarball of the task's source root in the object store,
fetched by `pyflyte-fast-execute` in the job (a job elsewhere than this machine cannot import the local files).
"""

import os
import tempfile

from flytekit.configuration import FastSerializationSettings
from flytekit.core.data_persistence import FileAccessProvider
from flytekit.tools.fast_registration import fast_package


def fast_settings(source_root: str, file_access: FileAccessProvider) -> FastSerializationSettings:
    """Packages `source_root` (default ignores: .gitignore, .dockerignore, .flyteignore) and uploads it once per
    content (the tarball's name is a digest of its files) under the run's raw-output prefix; the job unpacks it
    into its working directory."""
    with tempfile.TemporaryDirectory() as out:
        tarball = str(fast_package(source_root, out))
        remote = file_access.join(file_access.raw_output_prefix, "code", os.path.basename(tarball))
        if not file_access.exists(remote):
            file_access.put_data(tarball, remote)
    return FastSerializationSettings(enabled=True, destination_dir=".", distribution_location=remote)
