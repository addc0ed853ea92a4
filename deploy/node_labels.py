"""The node labels the rendered manifests select on, read from the Jetson itself.

``edge-sdk/module`` is the planner catalog's module name (the pods are sized for it) and
``edge-sdk/l4t`` the L4T release ``r<major>.<minor>`` (the image's L4T tag must match it).
"""

from __future__ import annotations

from edge_sdk.board import detect_module, read_board_model, read_l4t_release
from edge_sdk.deploy.manifests import L4T_LABEL, MODULE_LABEL, l4t_selector
from edge_sdk.errors import DeployError

__all__ = ["node_labels"]


def node_labels() -> dict[str, str]:
    """``{"edge-sdk/module": "orin-nano-8gb", "edge-sdk/l4t": "r36.4"}`` for this board."""
    module = detect_module()
    if module is None:
        model = read_board_model()
        seen = f"its device tree says {model!r}" if model else "no device-tree model is readable"
        raise DeployError(
            f"this machine is not a Jetson Orin ({seen}); run edge-deploy "
            "node-labels on each Jetson node, outside a container"
        )
    labels = {MODULE_LABEL: module}
    release = read_l4t_release()
    if release is None:
        raise DeployError(
            "cannot read the L4T release from /etc/nv_tegra_release (is JetPack "
            "installed?); label the node by hand: edge-sdk/l4t=r<major>.<minor>"
        )
    labels[L4T_LABEL] = l4t_selector(release)
    return labels
