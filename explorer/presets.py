"""Named presets as plain data: each a `ResNetConfig` with the reference it reproduces."""

from __future__ import annotations

from dataclasses import dataclass

from explorer.config import ConfigError, ResNetConfig


@dataclass(frozen=True, kw_only=True)
class Preset:
    """A named configuration and the published network it reproduces.

    Attributes:
        name: CLI/URL name, e.g. "resnet56".
        config: The configuration.
        source: Paper or code it reproduces.
        url: Where to read the source.
        dataset: "CIFAR-10" or "ImageNet".
        reported_params: Parameter count the source states (None when it states none).
        reported_error: Top-1 test error in percent the source reports (None when none).
        notes: Choices the source leaves open and how this preset settles them.
    """

    name: str
    config: ResNetConfig
    source: str
    url: str
    dataset: str
    reported_params: int | None
    reported_error: float | None
    notes: str = ""


HE2015 = "He et al. 2015, Deep Residual Learning for Image Recognition (Table 6)"
HE2015_URL = "https://arxiv.org/abs/1512.03385"
HE2016 = "He et al. 2016, Identity Mappings in Deep Residual Networks"
HE2016_URL = "https://arxiv.org/abs/1603.05027"
KERAS_EXAMPLE = "Keras example cifar10_resnet.py (ResNet v1/v2 on CIFAR-10)"
KERAS_EXAMPLE_URL = "https://github.com/keras-team/keras/blob/2.3.1/examples/cifar10_resnet.py"
KERAS_APPS = "keras.applications ResNetV2 (weights=None)"
KERAS_APPS_URL = "https://keras.io/api/applications/resnet/"

_HE2015_CIFAR = ResNetConfig(version=1, block="basic", filters=16, shortcut="A", stem="cifar", head="gap", conv_bias="auto")
_KERAS_V1 = ResNetConfig(
    version=1, block="basic", filters=16, shortcut="B", projection_bn=False, stem="cifar", head="flatten",
    conv_bias="always", initializer="he_normal", l2=1e-4,
)
_KERAS_V2 = ResNetConfig(
    version=2, block="bottleneck", depth=56, filters=16, width_rule="keras", shortcut="B", stride_at="conv1",
    first_preact=False, projection_from="input", projection_bn=False, stem="cifar", head="flatten",
    conv_bias="always", initializer="he_normal", l2=1e-4,
)
_PREACT = ResNetConfig(
    version=2, block="bottleneck", depth=164, filters=16, shortcut="B", stride_at="conv1",
    projection_from="preact", projection_bn=False, stem="cifar", head="gap", conv_bias="auto",
)
_IMAGENET_V2 = ResNetConfig(
    version=2, block="bottleneck", depth=50, stages=4, filters=64, shortcut="B", stride_at="conv3x3",
    downsample="last", projection_from="preact", projection_bn=False, stem="imagenet", head="gap",
    input_shape=(224, 224, 3), classes=1000, conv_bias="auto", explicit_padding=True,
    initializer="glorot_uniform", bn_epsilon=1.001e-5,
)

_HE2015_NOTE = "Option A shortcuts (zero-padding, no parameters), stride in the first 3×3 conv, no conv bias (BN follows)."
_KERAS_EXAMPLE_NOTE = (
    "Convs with bias, he_normal, l2(1e-4); the projection is a plain 1×1 conv (bias, no BN); "
    "head AveragePooling2D(8) → Flatten → Dense(softmax). Reported error = 100 − the example's 200-epoch accuracy."
)


def _he2015(depth: int, params: int, error: float) -> Preset:
    return Preset(
        name=f"resnet{depth}", config=_HE2015_CIFAR.replace(depth=depth), source=HE2015, url=HE2015_URL,
        dataset="CIFAR-10", reported_params=params, reported_error=error, notes=_HE2015_NOTE,
    )


def _keras_apps(depth: int, params: int, error: float) -> Preset:
    return Preset(
        name=f"resnet{depth}v2", config=_IMAGENET_V2.replace(depth=depth), source=KERAS_APPS, url=KERAS_APPS_URL,
        dataset="ImageNet", reported_params=params, reported_error=error,
        notes="Exactly keras.applications: stride in the 3×3 of the last block of stages 1–3, "
        "identity subsampled by a 1×1 max-pool, projection from the pre-activation, ZeroPadding2D + valid convs. "
        "Reported error = 100 − the top-1 accuracy listed on keras.io.",
    )


_LIST = [
    _he2015(20, 270_000, 8.75),
    _he2015(32, 460_000, 7.51),
    _he2015(44, 660_000, 7.17),
    _he2015(56, 850_000, 6.97),
    _he2015(110, 1_700_000, 6.43),
    _he2015(1202, 19_400_000, 7.93),
    Preset(
        name="preact-resnet110", config=_PREACT.replace(block="basic", depth=110, shortcut="A"), source=HE2016,
        url=HE2016_URL, dataset="CIFAR-10", reported_params=1_700_000, reported_error=6.37,
        notes="Pre-activation basic blocks, option A shortcuts as in the 2015 ResNet-110 it is compared with.",
    ),
    Preset(
        name="preact-resnet164", config=_PREACT, source=HE2016, url=HE2016_URL, dataset="CIFAR-10",
        reported_params=1_700_000, reported_error=5.46,
        notes="Bottleneck widths 16/32/64 ×4, projection (1×1 conv, no BN) from the shared pre-activation "
        "where the shape changes, stride in the first 1×1 (the authors' resnet-1k-layers code).",
    ),
    Preset(
        name="preact-resnet1001", config=_PREACT.replace(depth=1001), source=HE2016, url=HE2016_URL,
        dataset="CIFAR-10", reported_params=10_200_000, reported_error=4.92,
        notes="As preact-resnet164 with 111 blocks per stage. The paper's 10.2M counts the conv weights; "
        "with BatchNormalization and the biases of the convs that feed an add the network has 10.5M.",
    ),
    Preset(
        name="keras-resnet20v1", config=_KERAS_V1.replace(depth=20), source=KERAS_EXAMPLE, url=KERAS_EXAMPLE_URL,
        dataset="CIFAR-10", reported_params=274_442, reported_error=7.84, notes=_KERAS_EXAMPLE_NOTE,
    ),
    Preset(
        name="keras-resnet56v2", config=_KERAS_V2, source=KERAS_EXAMPLE, url=KERAS_EXAMPLE_URL,
        dataset="CIFAR-10", reported_params=None, reported_error=6.99,
        notes=_KERAS_EXAMPLE_NOTE + " v2 widths: inner = the stage's input width (16→64, 64→128, 128→256); "
        "the first block has no BN-ReLU of its own; stride in the first 1×1.",
    ),
    Preset(
        name="keras-resnet110v2", config=_KERAS_V2.replace(depth=110), source=KERAS_EXAMPLE, url=KERAS_EXAMPLE_URL,
        dataset="CIFAR-10", reported_params=None, reported_error=6.85, notes=_KERAS_EXAMPLE_NOTE,
    ),
    Preset(
        name="tutorial",
        config=_KERAS_V2.replace(filters=32, stem="tutorial", head="tutorial", initializer="glorot_uniform"),
        source="The Keras ResNetV2 tutorial this project grew from (its layout is in the notes below)", url="",
        dataset="CIFAR-10", reported_params=None, reported_error=None,
        notes="Depth 9n+2 (default 56; any 9n+2 via --depth). Stem conv(32)-BN-ReLU-Dropout(0.2); widths "
        "32→128, 128→256, 256→512; head BN-ReLU-AvgPool(8)-Flatten-Dense(512, relu)-BN-Dropout(0.5)-Dense.",
    ),
    _keras_apps(50, 25_613_800, 24.0),
    _keras_apps(101, 44_675_560, 22.8),
    _keras_apps(152, 60_380_648, 22.0),
]

PRESETS: dict[str, Preset] = {p.name: p for p in _LIST}
DEFAULT_PRESET = "resnet20"


def get_preset(name: str) -> Preset:
    """The preset called `name`, or a ConfigError listing the names."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError("preset", f"no preset called {name!r}", f"choose one of: {', '.join(PRESETS)}") from None
