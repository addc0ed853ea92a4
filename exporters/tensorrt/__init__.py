"""TensorRT: the compatibility check and rewrite, engine profiles and build, and edge-engine."""
