"""The disk side of an export: room for the traced flow's bundle and work file, checked before
the export runs, and an operating-system error met while writing (a disk that fills up
mid-write, a folder made read-only meanwhile) turned into one :class:`~edge_sdk.ExportError`
line. The bundle is written whole or not at all (:class:`~edge_sdk.bundle.BundleWriter`), so
nothing half-written is left either way."""

from __future__ import annotations

import errno
import tempfile
from pathlib import Path

from edge_sdk.config import ModelConfig
from edge_sdk.errors import ExportError
from edge_sdk.exporters.sources import check_free_space

__all__ = ["check_traced_space", "write_error"]

_BYTES_PER_PARAMETER = {"fp16": 2.0, "w8a8": 1.25}  # w8a8: int8 weights, float norms and scales
_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def check_traced_space(config: ModelConfig, precision: str, output: Path) -> None:
    """Room for a traced (fp16, W8A8) export: the bundle beside ``output`` and the float32 graph
    in the temporary directory's work folder."""
    parameters = config.parameter_count()
    bundle = int(parameters * _BYTES_PER_PARAMETER.get(precision, 4.0))
    check_free_space(output.parent, bundle, f"the {precision} bundle")
    check_free_space(
        Path(tempfile.gettempdir()),
        4 * parameters,
        "the export's float32 work graph (the temporary directory; set TMPDIR elsewhere)",
    )


def write_error(exc: OSError, output: Path) -> ExportError:
    """``exc``, met during an export to ``output``, as one line that says what to do."""
    where = exc.filename or output
    reason = exc.strerror or str(exc)
    if exc.errno in _FULL:
        return ExportError(
            f"the disk filled up while writing {where} ({reason}); nothing was kept (a bundle "
            f"is written whole or not at all): free some space or write elsewhere with -o "
            f"(--output)"
        )
    return ExportError(f"{where}: {reason}, during the export; nothing was kept at {output}")
