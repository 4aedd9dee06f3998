"""Build the small models tests/test_delegation.py and tests/test_model_inputs.py run.

Run once with TensorFlow 2.14 (the outputs are committed):
    PYTHONPATH=$PWD /work/main/.venv-tf/bin/python tests/data/make_delegation_models.py

* full_delegate.tflite: FULLY_CONNECTED (RELU fused) -> FULLY_CONNECTED, all XNNPACK can run: 1 partition.
* split_delegate.tflite: FULLY_CONNECTED, CUMSUM (no XNNPACK kernel), FULLY_CONNECTED: the
  CUMSUM stays on the built-in kernels and cuts the graph into 2 partitions.
* dynamic_len.tflite: float input x of shape [1, -1] (a dynamic length), summed to [1, 1].
* two_signatures.tflite: signatures "double" (x * 2) and "shift" (x + offset), x of shape [1, 4].
* stateful.tflite: a resource variable that accumulates its input (like a streaming keyword spotter's
  state): VAR_HANDLE, READ_VARIABLE, ASSIGN_VARIABLE.
"""

import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf

HERE = Path(__file__).resolve().parent


def convert(fn: tf.types.experimental.GenericFunction) -> bytes:
    conv = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn)
    return conv.convert()


def main() -> None:
    rng = np.random.default_rng(11)
    w1 = tf.constant(rng.normal(size=(8, 16)).astype(np.float32))
    w2 = tf.constant(rng.normal(size=(16, 4)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([1, 8], tf.float32, name="x")])
    def full(x: tf.Tensor) -> tf.Tensor:
        return tf.matmul(tf.nn.relu(tf.matmul(x, w1)), w2)

    @tf.function(input_signature=[tf.TensorSpec([1, 8], tf.float32, name="x")])
    def split(x: tf.Tensor) -> tf.Tensor:
        return tf.matmul(tf.math.cumsum(tf.matmul(x, w1), axis=1), w2)

    @tf.function(input_signature=[tf.TensorSpec([1, None], tf.float32, name="x")])
    def dynamic(x: tf.Tensor) -> tf.Tensor:
        return tf.reduce_sum(x * 3.0, axis=1, keepdims=True)

    class Two(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32, name="x")])
        def double(self, x: tf.Tensor) -> dict:
            return {"y": x * 2.0}

        @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32, name="x"),
                                      tf.TensorSpec([1, 4], tf.float32, name="offset")])
        def shift(self, x: tf.Tensor, offset: tf.Tensor) -> dict:
            return {"y": x + offset}

    module = Two()
    with tempfile.TemporaryDirectory() as tmp:
        tf.saved_model.save(module, tmp, signatures={"double": module.double, "shift": module.shift})
        conv = tf.lite.TFLiteConverter.from_saved_model(tmp, signature_keys=["double", "shift"])
        (HERE / "two_signatures.tflite").write_bytes(conv.convert())
    class Stateful(tf.Module):
        def __init__(self) -> None:
            self.state = tf.Variable(tf.zeros([1, 4]))

        @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32, name="x")])
        def step(self, x: tf.Tensor) -> tf.Tensor:
            self.state.assign(self.state * 0.5 + x)
            return self.state.read_value()

    stateful = Stateful()
    conv = tf.lite.TFLiteConverter.from_concrete_functions([stateful.step.get_concrete_function()], stateful)
    conv.experimental_enable_resource_variables = True
    (HERE / "stateful.tflite").write_bytes(conv.convert())
    (HERE / "dynamic_len.tflite").write_bytes(convert(dynamic))
    (HERE / "full_delegate.tflite").write_bytes(convert(full))
    (HERE / "split_delegate.tflite").write_bytes(convert(split))


if __name__ == "__main__":
    main()
