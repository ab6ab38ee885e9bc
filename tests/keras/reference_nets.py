"""Independent Keras transcriptions of the reference code the presets claim to reproduce.

Written straight from the published structure (the Keras example `cifar10_resnet.py` and the
tutorial described in DESIGN.md §5), deliberately *not* through explorer's graph, so that
comparing the two proves the presets.
"""

from __future__ import annotations

import keras
from keras import layers


def _unit(x, filters, *, kernel=3, strides=1, activation="relu", bn=True, conv_first=True,
          initializer="he_normal", dropout=0.0):
    """The Keras example's `resnet_layer` (and the tutorial's `residual_block`)."""
    conv = layers.Conv2D(filters, kernel, strides=strides, padding="same", kernel_initializer=initializer,
                         kernel_regularizer=keras.regularizers.L2(1e-4))
    if conv_first:
        x = conv(x)
        if bn:
            x = layers.BatchNormalization()(x)
        if activation:
            x = layers.Activation(activation)(x)
        if dropout:
            x = layers.Dropout(dropout)(x)
        return x
    if bn:
        x = layers.BatchNormalization()(x)
    if activation:
        x = layers.Activation(activation)(x)
    return conv(x)


def keras_example_v1(depth: int, input_shape=(32, 32, 3), classes=10) -> keras.Model:
    """`resnet_v1` of the Keras example."""
    n = (depth - 2) // 6
    filters = 16
    inputs = keras.Input(input_shape)
    x = _unit(inputs, filters)
    for stack in range(3):
        for block in range(n):
            strides = 2 if stack > 0 and block == 0 else 1
            y = _unit(x, filters, strides=strides)
            y = _unit(y, filters, activation=None)
            if stack > 0 and block == 0:
                x = _unit(x, filters, kernel=1, strides=strides, activation=None, bn=False)
            x = layers.add([x, y])
            x = layers.Activation("relu")(x)
        filters *= 2
    x = layers.AveragePooling2D(8)(x)
    x = layers.Flatten()(x)
    outputs = layers.Dense(classes, activation="softmax", kernel_initializer="he_normal")(x)
    return keras.Model(inputs, outputs)


def _v2_body(inputs, depth, stem_filters, *, initializer, stem_dropout=0.0):
    n = (depth - 2) // 9
    f_in = stem_filters
    x = _unit(inputs, f_in, initializer=initializer, dropout=stem_dropout)
    for stage in range(3):
        for block in range(n):
            activation, bn, strides = "relu", True, 1
            if stage == 0:
                f_out = f_in * 4
                if block == 0:
                    activation, bn = None, False
            else:
                f_out = f_in * 2
                if block == 0:
                    strides = 2
            y = _unit(x, f_in, kernel=1, strides=strides, activation=activation, bn=bn, conv_first=False,
                      initializer=initializer)
            y = _unit(y, f_in, conv_first=False, initializer=initializer)
            y = _unit(y, f_out, kernel=1, conv_first=False, initializer=initializer)
            if block == 0:
                x = _unit(x, f_out, kernel=1, strides=strides, activation=None, bn=False, initializer=initializer)
            x = layers.add([x, y])
        f_in = f_out
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    x = layers.AveragePooling2D(8)(x)
    return layers.Flatten()(x)


def keras_example_v2(depth: int, input_shape=(32, 32, 3), classes=10) -> keras.Model:
    """`resnet_v2` of the Keras example."""
    inputs = keras.Input(input_shape)
    x = _v2_body(inputs, depth, 16, initializer="he_normal")
    outputs = layers.Dense(classes, activation="softmax", kernel_initializer="he_normal")(x)
    return keras.Model(inputs, outputs)


def tutorial(depth: int, input_shape=(32, 32, 3), classes=10) -> keras.Model:
    """The tutorial's ResNetV2 (DESIGN.md §5): stem of 32 with dropout, a Dense(512) head."""
    inputs = keras.Input(input_shape)
    x = _v2_body(inputs, depth, 32, initializer="glorot_uniform", stem_dropout=0.2)
    x = layers.Dense(512, activation="relu")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Dropout(0.5)(x)
    outputs = layers.Dense(classes, activation="softmax")(x)
    return keras.Model(inputs, outputs)
