"""Plain PyTorch library behind the CIFAR-10 trainer: data, models, training, runs, inference."""
