"""edge_sdk.serve: ``edge-serve``, an OpenAI-compatible HTTP server over a bundle.

::

    edge-serve demo-int8 --slots 4              # then any OpenAI client:
    client = openai.OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="none")
    client.chat.completions.create(model="demo", messages=[{"role": "user", "content": "Hi"}])

The server composes the runtime's continuous-batching engine (``edge_sdk.runtime.engine``) and
the power module (energy per request); neither of them imports this package. It needs the
``serve`` extra (Starlette, uvicorn, prometheus-client): ``pip install 'edge-sdk-orin[serve]'``.
Using a name below without it raises :class:`~edge_sdk.BackendUnavailableError` saying so.
See ``serve/README.md`` for the API, the flags, errors, metrics and how energy is apportioned.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["EdgeServer", "EnergyAccountant", "ServeSettings", "ServerState", "create_app"]

_WHERE = {
    "EdgeServer": "server",
    "EnergyAccountant": "energy",
    "ServeSettings": "state",
    "ServerState": "state",
    "create_app": "app",
}


def __getattr__(name: str) -> Any:
    # lazy, so that `edge-serve` without the extra prints one line instead of a traceback
    if name not in _WHERE:
        raise AttributeError(f"module 'edge_sdk.serve' has no attribute {name!r}")
    from edge_sdk._optional import require

    for module in ("starlette", "uvicorn", "prometheus_client"):
        require(module, "edge_sdk.serve (the OpenAI-compatible server)")
    return getattr(importlib.import_module(f"edge_sdk.serve.{_WHERE[name]}"), name)
