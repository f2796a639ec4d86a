"""How to reach a container: the Docker API backend and the node backend (host /proc + overlay
upperdir), behind one `ContainerHandle`. May import ir.records, ir.errors and ir.clock only."""

from ir.runtime.base import (
    ActionLog,
    ContainerHandle,
    ContainerState,
    FileContent,
    FsDiffSource,
    FsEntry,
    NetworkSource,
    ProcessSource,
)
from ir.runtime.resolve import BACKENDS, open_container

__all__ = [
    "BACKENDS",
    "ActionLog",
    "ContainerHandle",
    "ContainerState",
    "FileContent",
    "FsDiffSource",
    "FsEntry",
    "NetworkSource",
    "ProcessSource",
    "open_container",
]
