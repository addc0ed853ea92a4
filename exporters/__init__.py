"""Exporters: a Lite model (``model.pt`` or a Hugging Face folder) to a verified ONNX bundle."""
