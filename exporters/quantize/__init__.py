"""Quantization: configs, int8 / int4 / W8A8 weight schemes, GPTQ, AWQ, SmoothQuant, calibration."""
