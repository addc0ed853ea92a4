"""edge_sdk.power: power modes, power sensors, sampling and tokens/s-per-watt efficiency.

Sensors (:func:`detect_sensor`; INA3221 sysfs, jtop, NVML, RAPL, replayed trace) are read by a
:class:`PowerSampler` thread; an :class:`EfficiencyLog` ties its samples to token timestamps;
:func:`power_mode` sets a Jetson power mode (``"15W"``) and always restores the previous one;
:class:`PowerGovernor` paces generation under a software budget. Hardware paths can be pointed at
a fake board through :mod:`edge_sdk.power.paths`. Command line: ``edge-power``.
"""

from __future__ import annotations

from edge_sdk.nvpmodel_conf import NvpConfig, NvpModelMode, parse_nvpmodel_text
from edge_sdk.power.controller import ModeChange, PowerController
from edge_sdk.power.efficiency import EfficiencyLog, EfficiencySummary, PhaseFigures
from edge_sdk.power.governor import GovernorReport, PowerGovernor
from edge_sdk.power.jetson_clocks import JetsonClocks
from edge_sdk.power.modes import PowerModeGuard, power_mode, recorded_states, restore_recorded
from edge_sdk.power.nvml_limit import NvmlPowerLimit
from edge_sdk.power.nvpmodel import NvpModel
from edge_sdk.power.plot import plot_efficiency
from edge_sdk.power.sampler import EnergyMeter, PowerSampler, SamplerStats
from edge_sdk.power.sensor_ina3221 import Ina3221Sensor
from edge_sdk.power.sensor_jtop import JtopSensor
from edge_sdk.power.sensor_nvml import NvmlSensor
from edge_sdk.power.sensor_rapl import RaplSensor
from edge_sdk.power.sensor_replay import (
    ReplaySensor,
    SyntheticSensor,
    load_trace,
    sample_trace_path,
)
from edge_sdk.power.sensors import (
    PowerReading,
    PowerSensor,
    RailReading,
    detect_sensor,
    open_sensor,
    probe_sensors,
)

__all__ = [
    "EfficiencyLog",
    "EfficiencySummary",
    "EnergyMeter",
    "GovernorReport",
    "Ina3221Sensor",
    "JetsonClocks",
    "JtopSensor",
    "ModeChange",
    "NvmlPowerLimit",
    "NvmlSensor",
    "NvpConfig",
    "NvpModel",
    "NvpModelMode",
    "PhaseFigures",
    "PowerController",
    "PowerGovernor",
    "PowerModeGuard",
    "PowerReading",
    "PowerSampler",
    "PowerSensor",
    "RailReading",
    "RaplSensor",
    "ReplaySensor",
    "SamplerStats",
    "SyntheticSensor",
    "detect_sensor",
    "load_trace",
    "open_sensor",
    "parse_nvpmodel_text",
    "plot_efficiency",
    "power_mode",
    "probe_sensors",
    "recorded_states",
    "restore_recorded",
    "sample_trace_path",
]
