"""Device catalog: the seven Jetson Orin modules and a few data-centre GPUs for comparison.

Every figure is a published number or a documented assumption:

- Memory and DRAM bandwidth: NVIDIA Jetson Orin module data sheets (also in
  ``shared/docs/jetson.md``). Bandwidth is the LPDDR5 peak: bus width x EMC rate
  (Orin Nano 8GB: 128 bit x 4266 MT/s = 68 GB/s at an EMC clock of 2133 MHz; Super, NX and AGX:
  3199 MHz -> 102 / 204.8 GB/s). A mode that caps EMC scales bandwidth by ``cap / max``.
- GPU peak: the data sheets give *sparse* INT8 TOPS (NX and AGX figures add the DLAs). The GPU's
  dense tensor-core rate of an Ampere (GA10B) SM is 4096 INT8 ops and 2048 FP16 FLOPs per clock,
  128 FP32 CUDA cores doing 2 FLOPs per clock; so dense INT8 = SMs x 4096 x clock. This reproduces
  the published GPU figures (AGX Orin 64GB: 16 SMs x 1.3 GHz -> 85 dense / 170 sparse INT8 TOPS,
  5.3 FP32 TFLOPS; Orin Nano 8GB: 8 SMs x 625 MHz -> 20 dense / 40 sparse) and lets a power
  mode scale compute by its GPU clock cap and the TPCs (2 SMs each) it leaves powered.
- Power modes, their clock caps and TPC gating: the module ``nvpmodel`` configuration files as
  shipped with JetPack 6 (``/etc/nvpmodel/nvpmodel_p3767_*.conf``, ``p3701_*.conf``). Where a
  mode's caps were not checked against a shipped file they are marked ``estimate``; pass
  ``--nvpmodel-conf FILE`` (see :mod:`edge_sdk.planner.nvpmodel_conf`) for the exact caps of a
  board.
- Budgets of modes without a wattage in their name (MAXN...) are assumptions: the module's
  maximum module power from its data sheet.
- ``reserved_bytes``: memory the OS and the CUDA context keep. Assumption: 1.5 GB on a Jetson
  (Ubuntu headless ~0.8 GB + CUDA/cuDNN/TensorRT libraries and context ~0.7 GB; a desktop session
  takes ~1 GB more), 0.5 GB on a discrete GPU (the CUDA context; the OS lives in host RAM).
  Override with ``--reserved-gb``.
- ``price_usd``: approximate list price of the module / card (2024-2025), for the TCO
  comparison only; override with ``--hardware-price``.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from edge_sdk.errors import ConfigError

__all__ = ["DEVICES", "Device", "PowerModeSpec", "device_names", "get_device"]

GB = 10**9
GIB = 2**30
_JETSON_RESERVED = int(1.5 * GB)
_DGPU_RESERVED = int(0.5 * GB)
_INT8_OPS_PER_SM_CLK = 4096
_FP16_FLOPS_PER_SM_CLK = 2048
_FP32_FLOPS_PER_SM_CLK = 256


@dataclass(frozen=True)
class PowerModeSpec:
    """The planner's spec of a power mode: its budget and the caps it puts on the GPU and the
    memory clock (from the catalog, or from an nvpmodel.conf via ``device_with_conf``).

    ``None`` caps mean "no cap" (the module's maximum). ``active_tpcs`` is the number of GPU TPCs
    left powered (``TPC_POWER_GATING``); ``None`` means all.
    """

    name: str
    budget_w: float
    mode_id: int | None = None
    gpu_max_hz: int | None = None
    emc_max_hz: int | None = None
    active_tpcs: int | None = None
    source: str = "estimate"

    @property
    def watts_in_name(self) -> int | None:
        """The wattage written in the mode's name (``MODE_15W`` -> 15), if any."""
        match = re.search(r"(\d+)\s*W", self.name, re.IGNORECASE)
        return int(match.group(1)) if match else None


@dataclass(frozen=True)
class Device:
    """A module or card: memory, bandwidth, peak compute at full clocks, and its power modes."""

    name: str
    title: str
    memory_bytes: int
    bandwidth_bytes_s: float  # DRAM peak at the maximum EMC clock
    int8_ops_s: float  # dense tensor-core peak
    fp16_flops_s: float  # dense tensor-core peak
    fp32_flops_s: float  # CUDA cores
    modes: tuple[PowerModeSpec, ...]
    default_mode: str
    reserved_bytes: int
    price_usd: float
    gpu_max_hz: int | None = None  # Jetson: for mode derating
    emc_max_hz: int | None = None
    gpu_tpcs: int | None = None
    jetson: bool = True

    def mode(self, name: str | None = None) -> PowerModeSpec:
        """A mode by exact name, or by the wattage it names (``15W`` finds ``MODE_15W``)."""
        if name is None:
            name = self.default_mode
        wanted = name.strip().upper()
        for mode in self.modes:
            if mode.name.upper() == wanted or (
                mode.mode_id is not None and wanted == str(mode.mode_id)
            ):
                return mode
        watts = PowerModeSpec(wanted, 0).watts_in_name
        if watts is not None:
            for mode in self.modes:
                if mode.watts_in_name == watts:
                    return mode
        raise ConfigError(
            f"{self.name} has no power mode {name!r}; its modes: "
            f"{', '.join(m.name for m in self.modes)}"
        )

    def bandwidth_scale(self, mode: PowerModeSpec) -> float:
        """Fraction of peak DRAM bandwidth the mode allows (EMC cap / EMC maximum)."""
        if mode.emc_max_hz is None or self.emc_max_hz is None:
            return 1.0
        return min(1.0, mode.emc_max_hz / self.emc_max_hz)

    def compute_scale(self, mode: PowerModeSpec) -> float:
        """Fraction of peak GPU throughput: clock cap / max clock x powered TPCs / all TPCs."""
        scale = 1.0
        if mode.gpu_max_hz is not None and self.gpu_max_hz:
            scale *= min(1.0, mode.gpu_max_hz / self.gpu_max_hz)
        if mode.active_tpcs is not None and self.gpu_tpcs:
            scale *= min(1.0, mode.active_tpcs / self.gpu_tpcs)
        return scale

    def with_modes(self, modes: tuple[PowerModeSpec, ...], default_mode: str) -> Device:
        """A copy with other modes (from an nvpmodel configuration file)."""
        return dataclasses.replace(self, modes=modes, default_mode=default_mode)

    def with_reserved(self, reserved_bytes: int) -> Device:
        """A copy with another OS + CUDA reservation."""
        if reserved_bytes < 0:
            raise ConfigError(f"reserved memory must be >= 0, got {reserved_bytes} bytes")
        return dataclasses.replace(self, reserved_bytes=reserved_bytes)


def _mode(
    name: str,
    budget: float,
    mode_id: int,
    gpu_mhz: float | None = None,
    emc_mhz: int | None = None,
    tpcs: int | None = None,
    checked: bool = True,
) -> PowerModeSpec:
    return PowerModeSpec(
        name=name,
        budget_w=budget,
        mode_id=mode_id,
        gpu_max_hz=None if gpu_mhz is None else int(gpu_mhz * 1e6),
        emc_max_hz=None if emc_mhz is None else emc_mhz * 10**6,
        active_tpcs=tpcs,
        source="JetPack 6 nvpmodel conf" if checked else "estimate",
    )


def _orin(
    name: str,
    title: str,
    memory_gib: int,
    bandwidth_gbs: float,
    sms: int,
    gpu_mhz: float,
    emc_mhz: int,
    modes: tuple[PowerModeSpec, ...],
    default: str,
    price: float,
) -> Device:
    clock = gpu_mhz * 1e6
    return Device(
        name=name,
        title=title,
        memory_bytes=memory_gib * GIB,
        bandwidth_bytes_s=bandwidth_gbs * GB,
        int8_ops_s=sms * _INT8_OPS_PER_SM_CLK * clock,
        fp16_flops_s=sms * _FP16_FLOPS_PER_SM_CLK * clock,
        fp32_flops_s=sms * _FP32_FLOPS_PER_SM_CLK * clock,
        modes=modes,
        default_mode=default,
        reserved_bytes=_JETSON_RESERVED,
        price_usd=price,
        gpu_max_hz=int(clock),
        emc_max_hz=emc_mhz * 10**6,
        gpu_tpcs=sms // 2,
    )


def _dgpu(
    name: str,
    title: str,
    memory_gb: float,
    bandwidth_gbs: float,
    int8_tops: float,
    fp16_tflops: float,
    fp32_tflops: float,
    watts: float,
    price: float,
) -> Device:
    mode = PowerModeSpec(f"{watts:g}W", watts, source="board power limit (TDP)")
    return Device(
        name=name,
        title=title,
        memory_bytes=int(memory_gb * GIB),
        bandwidth_bytes_s=bandwidth_gbs * GB,
        int8_ops_s=int8_tops * 1e12,
        fp16_flops_s=fp16_tflops * 1e12,
        fp32_flops_s=fp32_tflops * 1e12,
        modes=(mode,),
        default_mode=mode.name,
        reserved_bytes=_DGPU_RESERVED,
        price_usd=price,
        jetson=False,
    )


_LIST: tuple[Device, ...] = (
    # Orin Nano 4GB: 2 TPCs (4 SMs) at 625 MHz, 64-bit LPDDR5 at 2133 MHz (p3767-0004).
    _orin(
        "orin-nano-4gb",
        "Jetson Orin Nano 4GB",
        4,
        34,
        4,
        625,
        2133,
        (
            _mode("10W", 10, 0),
            _mode("7W_AI", 7, 1, gpu_mhz=408, emc_mhz=2133),
            _mode("7W_CPU", 7, 2, gpu_mhz=306, emc_mhz=2133),
        ),
        "10W",
        199,
    ),
    # Orin Nano 8GB: 4 TPCs (8 SMs) at 625 MHz, 128-bit LPDDR5 at 2133 MHz (p3767-0003).
    _orin(
        "orin-nano-8gb",
        "Jetson Orin Nano 8GB",
        8,
        68,
        8,
        625,
        2133,
        (
            _mode("15W", 15, 0),
            _mode("7W", 7, 1, gpu_mhz=408, emc_mhz=2133, tpcs=2),
        ),
        "15W",
        249,
    ),
    # Orin Nano 8GB with JetPack 6.2 "Super" modes: GPU to 1020 MHz, EMC to 3199 MHz.
    _orin(
        "orin-nano-super",
        "Jetson Orin Nano 8GB Super",
        8,
        102,
        8,
        1020,
        3199,
        (
            _mode("15W", 15, 0, gpu_mhz=612, emc_mhz=2133),
            _mode("25W", 25, 1, gpu_mhz=918),
            _mode("MAXN_SUPER", 25, 2),  # budget: assumption (uncapped, ~25 W sustained)
        ),
        "25W",
        249,
    ),
    # Orin NX 8GB: 4 TPCs at 765 MHz, 128-bit LPDDR5 at 3199 MHz (p3767-0001); caps estimated
    # from the NX 16GB file.
    _orin(
        "orin-nx-8gb",
        "Jetson Orin NX 8GB",
        8,
        102,
        8,
        765,
        3199,
        (
            _mode("MAXN", 25, 0, checked=False),  # budget: assumption
            _mode("10W", 10, 1, gpu_mhz=612, emc_mhz=2133, tpcs=2, checked=False),
            _mode("15W", 15, 2, gpu_mhz=612, tpcs=2, checked=False),
            _mode("20W", 20, 3, gpu_mhz=408, checked=False),
        ),
        "15W",
        399,
    ),
    # Orin NX 16GB: 4 TPCs at 918 MHz (p3767-0000).
    _orin(
        "orin-nx-16gb",
        "Jetson Orin NX 16GB",
        16,
        102,
        8,
        918,
        3199,
        (
            _mode("MAXN", 40, 0),  # budget: assumption
            _mode("10W", 10, 1, gpu_mhz=612, emc_mhz=2133, tpcs=2),
            _mode("15W", 15, 2, gpu_mhz=612, tpcs=2),
            _mode("25W", 25, 3, gpu_mhz=408),
        ),
        "15W",
        599,
    ),
    # AGX Orin 32GB: 7 TPCs (14 SMs) at 930 MHz, 256-bit LPDDR5 at 3199 MHz (p3701-0004).
    _orin(
        "agx-orin-32gb",
        "Jetson AGX Orin 32GB",
        32,
        204.8,
        14,
        930,
        3199,
        (
            _mode("MAXN", 50, 0),  # budget: assumption
            _mode("MODE_15W", 15, 1, gpu_mhz=408, emc_mhz=2133, tpcs=3),
            _mode("MODE_30W", 30, 2, gpu_mhz=612, tpcs=4),
            _mode("MODE_40W", 40, 3, gpu_mhz=816),
        ),
        "MODE_30W",
        999,
    ),
    # AGX Orin 64GB: 8 TPCs (16 SMs) at 1300 MHz (p3701-0005); caps of the non-MAXN modes
    # estimated (JetPack 5 developer-guide power-mode table).
    _orin(
        "agx-orin-64gb",
        "Jetson AGX Orin 64GB",
        64,
        204.8,
        16,
        1300,
        3199,
        (
            _mode("MAXN", 60, 0),  # budget: assumption
            _mode("MODE_15W", 15, 1, gpu_mhz=420, emc_mhz=2133, tpcs=3, checked=False),
            _mode("MODE_30W", 30, 2, gpu_mhz=624.75, tpcs=4, checked=False),
            _mode("MODE_50W", 50, 3, gpu_mhz=828.75, checked=False),
        ),
        "MODE_30W",
        1799,
    ),
    # Data-centre GPUs (NVIDIA data sheets; dense tensor figures, SXM H100).
    _dgpu("t4", "NVIDIA T4 16GB", 16, 320, 130, 65, 8.1, 70, 2000),
    _dgpu("a100-40gb", "NVIDIA A100 40GB", 40, 1555, 624, 312, 19.5, 400, 10000),
    _dgpu("h100", "NVIDIA H100 SXM 80GB", 80, 3350, 1979, 989, 67, 700, 30000),
)

DEVICES: dict[str, Device] = {device.name: device for device in _LIST}


def device_names() -> list[str]:
    """Names of the catalog's devices, Jetson modules first."""
    return list(DEVICES)


def get_device(name: str) -> Device:
    """A device by name (case-insensitive); an unknown name lists the valid ones."""
    device = DEVICES.get(name.strip().lower())
    if device is None:
        raise ConfigError(f"unknown device {name!r}; valid devices: {', '.join(DEVICES)}")
    return device
