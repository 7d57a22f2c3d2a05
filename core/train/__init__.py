"""PyTorch side of dsen2: the paper's networks and their ONNX export (the only home of torch)."""
