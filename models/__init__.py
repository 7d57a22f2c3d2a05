"""The shipped DSen2 ONNX models, their catalogue (catalogue.json) and model cards."""
