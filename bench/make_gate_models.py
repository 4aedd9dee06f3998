"""Build the conv models of the regression-gate benchmark (run once; the outputs are committed).

Two untrained, seeded CNNs that differ by exactly one layer of the same kind:

* ``bench/models/gate/base/convnet/fp32.tflite``: a stem conv then N identical 3x3 convs;
* ``bench/models/gate/slower/convnet/fp32.tflite``: the same with N + 1 of them, ~15 % slower.

Both folders name the family ``convnet`` with a variant ``fp32``, so `benchbot compare` of a run
of one against a run of the other matches the cell and sees a real, known slowdown (and notes the
different model file). Weights are random (seeded): only the speed matters here. Run with the
TensorFlow venv that `make test` builds::

    .venv-tf/bin/python bench/make_gate_models.py [--layers N] [--size 64] [--channels 16]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent / "models" / "gate"
SEED = 2026


def build(tf, layers: int, size: int, channels: int):  # noqa: ANN001, ANN201 - TensorFlow is untyped
    tf.keras.utils.set_random_seed(SEED)
    inp = tf.keras.Input((size, size, 3), name="image")
    x = tf.keras.layers.Conv2D(channels, 3, padding="same", activation="relu")(inp)
    for _ in range(layers):
        x = tf.keras.layers.Conv2D(channels, 3, padding="same", activation="relu")(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    out = tf.keras.layers.Dense(4, activation="softmax", name="scores")(x)
    return tf.keras.Model(inp, out)


def convert(tf, model) -> bytes:  # noqa: ANN001
    return tf.lite.TFLiteConverter.from_keras_model(model).convert()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=7)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--channels", type=int, default=16)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    np.random.seed(SEED)
    for name, layers in (("base", args.layers), ("slower", args.layers + 1)):
        folder = HERE / name / "convnet"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "fp32.tflite").write_bytes(convert(tf, build(tf, layers, args.size, args.channels)))
        print(folder / "fp32.tflite", layers, "layers")


if __name__ == "__main__":
    main()
