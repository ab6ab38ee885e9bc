"""ResNet Explorer: build residual networks of any shape, see them, and train them briefly on CIFAR-10."""

import os

# Several processes may share a GPU: the server (whose views build Keras models) and its training
# processes. TensorFlow would otherwise reserve nearly all GPU memory in the first one to touch it.
os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
