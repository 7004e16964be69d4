"""Images in: reading and preprocessing pictures and tensors for the model's input."""
