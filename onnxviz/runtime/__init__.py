"""onnxruntime: devices, sessions, IOBinding, batching, and the engines the analyses share."""
