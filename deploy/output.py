"""Rendered manifests as YAML: one stream on stdout, or one file per object in a folder."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from edge_sdk._optional import require
from edge_sdk.errors import DeployError

__all__ = ["dump_yaml", "manifest_file_name", "write_manifests"]


def dump_yaml(documents: list[dict[str, Any]], header: str = "") -> str:
    """A multi-document YAML stream; ``header`` lines become comments at the top."""
    yaml = require("yaml", "edge-deploy k8s")
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    body = "---\n".join(
        yaml.safe_dump(doc, sort_keys=False, default_flow_style=False) for doc in documents
    )
    return comment + body


def manifest_file_name(index: int, document: dict[str, Any]) -> str:
    """``01-daemonset-edge-serve.yaml``: ordered as rendered, named by kind and name."""
    return f"{index + 1:02d}-{document['kind'].lower()}-{document['metadata']['name']}.yaml"


def write_manifests(
    documents: list[dict[str, Any]], folder: Path, header: str = "", force: bool = False
) -> list[Path]:
    """Write each document to ``folder`` at once (a temporary sibling, then a rename).

    An existing folder is replaced only with ``force`` and only if it holds nothing but YAML
    files (a previous rendering), so a wrong ``-o`` cannot delete other work.
    """
    folder = folder.resolve()
    if folder.exists():
        if not force:
            raise DeployError(f"{folder} exists; pass --force to replace it")
        if not folder.is_dir() or any(
            not p.is_file() or p.suffix != ".yaml" for p in folder.iterdir()
        ):
            raise DeployError(f"{folder} holds more than rendered .yaml files; not replacing it")
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    except OSError as exc:
        raise DeployError(f"cannot write to {folder.parent}: {exc.strerror or exc}") from exc
    try:
        names = []
        for index, document in enumerate(documents):
            name = manifest_file_name(index, document)
            (work / name).write_text(dump_yaml([document], header), encoding="utf-8")
            names.append(name)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(work, 0o777 & ~umask)  # mkdtemp made it private
        if folder.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old.", dir=folder.parent))
            os.rename(folder, old / folder.name)
            os.rename(work, folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(work, folder)
    except OSError as exc:
        shutil.rmtree(work, ignore_errors=True)
        raise DeployError(f"cannot write {folder}: {exc.strerror or exc}") from exc
    return [folder / name for name in names]
