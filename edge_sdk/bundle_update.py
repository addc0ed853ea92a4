"""Change an existing bundle atomically: add or replace files and edit the manifest.

The new bundle is assembled in a temporary sibling directory (unchanged files are hard-linked
when the filesystem allows it, copied otherwise; files are never modified in place, so a link is
safe), every file is hashed again, and the directory replaces the old one with renames
(:class:`~edge_sdk.bundle.BundleWriter`). An interrupted update leaves the old bundle as it was.
Only the files the manifest lists are carried over.
"""

from __future__ import annotations

import copy
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from edge_sdk.bundle import Bundle, BundleWriter, load_bundle
from edge_sdk.errors import BundleError

__all__ = ["update_bundle"]

ManifestEdit = Callable[[dict[str, Any]], dict[str, Any]]


def _place(source: Path, target: Path, link: bool) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if link:
        try:
            os.link(source, target)
            return
        except OSError:
            pass
    shutil.copy2(source, target)


def update_bundle(
    path: str | os.PathLike[str],
    edit: ManifestEdit | None = None,
    add_files: Mapping[str, str | os.PathLike[str]] | None = None,
    remove_files: tuple[str, ...] = (),
) -> Bundle:
    """Replace the bundle at ``path`` by a copy with ``add_files`` (bundle name -> source file)
    added or replaced, ``remove_files`` dropped, and the manifest passed through ``edit``.

    The bundle is verified first (a corrupted bundle is not updated). Returns the new bundle.
    """
    bundle = load_bundle(path, verify=True)
    added = {name: Path(src) for name, src in (add_files or {}).items()}
    for name in [*added, *remove_files]:
        if Path(name).is_absolute() or ".." in Path(name).parts or name == "manifest.json":
            raise BundleError(f"cannot add or remove {name!r} in a bundle")
    for name, src in added.items():
        if not src.is_file():
            raise BundleError(f"cannot add {src} to the bundle as {name}: no such file")
    with BundleWriter(bundle.path) as writer:
        for name in bundle.manifest["files"]:
            if name not in added and name not in remove_files:
                _place(bundle.path / name, writer.dir / name, link=True)
        for name, src in added.items():
            _place(src, writer.dir / name, link=False)
        manifest = copy.deepcopy(bundle.manifest)
        if edit is not None:
            manifest = edit(manifest)
        return writer.commit(manifest)
