"""Build the small demo zoo in ``benchbot/models/zoo/`` (run once; the outputs are committed).

Four families let benchbot show the paper's comparison without downloading anything:

* ``tweet-large``: a small BERT-like teacher for tweet reputation polarity (negative/neutral/positive),
* ``tweet-mobile``: a narrow, bottlenecked MobileBERT-style student for the same task,
* ``shapes-cnn``: a tiny image CNN, so the zoo also has a float-input model (int8 I/O),
* ``tweet-bert3``: a tiny BERT-style model with the three inputs of a BERT export
  (input_ids, attention_mask, token_type_ids with a 2-row embedding).

Data is generated (seed 2023), not downloaded, so anybody can rebuild it. Each family gets the
variants fp32, fp16, dynamic and int8 (with int8 I/O where the input is float).

Why TensorFlow 2.14: the converter picks op versions, and a model converted by TF 2.21 uses
e.g. FULLY_CONNECTED v12, which tflite-runtime 2.14 (what Raspberry Pi OS users install)
refuses. Converting with tensorflow-cpu==2.14.1 gives models that run in both tflite-runtime
2.14 and ai-edge-litert 2.x. Run it as::

    make zoo    # .venv-tf with tensorflow-cpu==2.14.1 and numpy<2, then this module

Seeds are fixed (python, numpy, TensorFlow) and op determinism is on, so a rebuild on the
same machine repeats itself; TF training is not bit-exact across machines or TF builds, so
another machine gives slightly different weights and accuracies.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchbot.models.convert import convert_family

SEED = 2023
SEQ_LEN = 32
VOCAB_SIZE = 1000
ZOO_VARIANTS = ("fp32", "fp16", "dynamic", "int8")
ZOO_DIR = Path(__file__).resolve().parent / "zoo"
N_EVAL = 300
N_CALIB = 200
TWEET_LABELS = ["negative", "neutral", "positive"]
SHAPE_LABELS = ["horizontal-stripes", "vertical-stripes", "circle", "square"]

# --------------------------------------------------------------------------- tweet-like data

POSITIVE = (
    "good great love excellent amazing awesome happy best fantastic wonderful nice reliable helpful fast "
    "friendly recommend impressive brilliant perfect enjoy smooth solid trusted glad thanks superb "
    "delighted favourite win quality kudos proud easy fair generous loyal secure cheap fresh praise"
).split()
NEGATIVE = (
    "bad terrible hate awful worst poor broken slow rude scam disappointed useless horrible angry fail "
    "refund complaint lousy buggy overpriced crash delay fraud annoying unreliable sucks ripoff sad "
    "disaster waste outage leak lawsuit scandal greedy dirty unsafe boycott mess shame"
).split()
NEGATORS = "not never no hardly isn't don't didn't wasn't".split()
INTENSIFIERS = "very really so extremely totally super absolutely incredibly".split()
COMMON = (
    "the a an and or but to of in on at for with from by about as is are was were be been have has had "
    "i you he she we they it my your our their this that these those just today yesterday tomorrow now "
    "new old store app phone bank car flight service support team customer price order delivery account "
    "update news ceo company product launch event city market stock share video photo post read check "
    "see look got get went going come came say said think know want need time day week year rt via "
    "lol omg btw amp http link more less some any every all one two three first last next still also"
).split()
BRANDS = (
    "acmebank zetaphone novaair orbitel quikmart lumacars helixpay bytebox terracoffee skyrail vortexfit "
    "pixelcam greengrid bluewave redkite silverline apexinsure nimbuscloud"
).split()
SYLLABLES = (
    "ba be bi bo bu ka ke ki ko ku la le li lo lu ma me mi mo mu "
    "na ne ni no nu ra re ri ro ru ta te ti to tu za zo"
).split()


def make_vocab(rng: np.random.Generator) -> list[str]:
    """id -> word: 0 pad, 1 [CLS], then polarity words, negators, intensifiers and neutral filler."""
    words = ["[PAD]", "[CLS]", *POSITIVE, *NEGATIVE, *NEGATORS, *INTENSIFIERS, *COMMON, *BRANDS]
    words += [f"@user{i}" for i in range(40)] + [f"#{b}" for b in BRANDS]
    seen = set(words)
    while len(words) < VOCAB_SIZE:  # readable pseudo-words stand in for the long tail of tweet tokens
        w = "".join(rng.choice(SYLLABLES, size=int(rng.integers(2, 4))))
        if w not in seen:
            seen.add(w)
            words.append(w)
    return words


class TweetGenerator:
    """Tweet-like token sequences whose polarity follows a small, learnable grammar.

    A negator directly before a polarity word (intensifiers may sit between) flips it; an
    intensifier doubles it; any other word breaks the chain, so stray negators do nothing.
    The label is the sign of the summed polarity (0 = neutral), with a little label noise.
    """

    def __init__(self, rng: np.random.Generator, label_noise: float = 0.03) -> None:
        self.rng = rng
        self.vocab = make_vocab(rng)
        ids = {w: i for i, w in enumerate(self.vocab)}
        self.pos = np.array([ids[w] for w in POSITIVE])
        self.neg = np.array([ids[w] for w in NEGATIVE])
        self.negators = np.array([ids[w] for w in NEGATORS])
        self.intens = np.array([ids[w] for w in INTENSIFIERS])
        self.neutral = np.arange(ids[COMMON[0]], VOCAB_SIZE)
        zipf = 1.0 / (np.arange(len(self.neutral)) + 8.0)  # common words common, long tail rare
        self.neutral_p = zipf / zipf.sum()
        self.label_noise = label_noise
        self.kind = {**{int(i): "pos" for i in self.pos}, **{int(i): "neg" for i in self.neg}}
        self.kind.update({int(i): "not" for i in self.negators})
        self.kind.update({int(i): "very" for i in self.intens})

    def label_of(self, tokens: list[int]) -> int:
        score, negate, weight = 0, False, 1
        for t in tokens:
            kind = self.kind.get(t)
            if kind == "not":
                negate = True
            elif kind == "very":
                weight = 2
            elif kind in ("pos", "neg"):
                value = (1 if kind == "pos" else -1) * weight * (-1 if negate else 1)
                score, negate, weight = score + value, False, 1
            else:
                negate, weight = False, 1
        return 0 if score < 0 else (2 if score > 0 else 1)

    def one(self) -> tuple[list[int], int]:
        rng = self.rng
        length = int(rng.integers(6, SEQ_LEN))  # content tokens after [CLS]
        chunks: list[list[int]] = []
        for _ in range(int(rng.choice(4, p=[0.25, 0.4, 0.25, 0.1]))):
            chunk = []
            if rng.random() < 0.3:
                chunk.append(int(rng.choice(self.negators)))
            if rng.random() < 0.25:
                chunk.append(int(rng.choice(self.intens)))
            chunk.append(int(rng.choice(self.pos if rng.random() < 0.5 else self.neg)))
            chunks.append(chunk)
        used = sum(len(c) for c in chunks)
        filler = rng.choice(self.neutral, size=max(length - used, 0), p=self.neutral_p).tolist()
        for i in range(len(filler)):  # stray negators/intensifiers that must not change the label
            if rng.random() < 0.04:
                filler[i] = int(rng.choice(self.negators if rng.random() < 0.5 else self.intens))
        slots = [[int(w)] for w in filler]
        for c in chunks:
            slots.insert(int(rng.integers(0, len(slots) + 1)), c)
        tokens = [t for s in slots for t in s][: SEQ_LEN - 1]
        label = self.label_of(tokens)
        if rng.random() < self.label_noise:
            label = int(rng.choice([c for c in range(3) if c != label]))
        return [1, *tokens], label

    def batch(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        x = np.zeros((n, SEQ_LEN), dtype=np.int32)
        y = np.zeros((n,), dtype=np.int64)
        for i in range(n):
            tokens, y[i] = self.one()
            x[i, : len(tokens)] = tokens
        return x, y


# --------------------------------------------------------------------------- image data


def make_shapes(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """32x32 RGB images of stripes (horizontal/vertical), a filled circle or a filled square.

    Colours, positions, sizes and stripe periods are random; the noise is a per-image brightness
    jitter plus speckles on ~8% of the pixels. Sparse noise and 1/255 steps (what a camera gives)
    keep the committed float32 eval.npz small: dense noise tripled its compressed size.
    """
    yy, xx = np.mgrid[0:32, 0:32]
    x = np.zeros((n, 32, 32, 3), dtype=np.float32)
    y = rng.integers(0, 4, size=n)
    for i in range(n):
        bg = rng.uniform(0, 1, 3)
        fg = rng.uniform(0, 1, 3)
        while np.abs(fg - bg).mean() < 0.3:
            fg = rng.uniform(0, 1, 3)
        if y[i] < 2:
            period = int(rng.integers(4, 11))
            coord = yy if y[i] == 0 else xx
            mask = ((coord + int(rng.integers(0, period))) % period) < max(period // 2, 2)
        elif y[i] == 2:
            cx, cy, r = rng.uniform(9, 23), rng.uniform(9, 23), rng.uniform(4, 9)
            mask = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
        else:
            s = int(rng.integers(7, 17))
            x0, y0 = int(rng.integers(1, 32 - s)), int(rng.integers(1, 32 - s))
            mask = (xx >= x0) & (xx < x0 + s) & (yy >= y0) & (yy < y0 + s)
        img = np.where(mask[..., None], fg, bg) * rng.uniform(0.85, 1.15)
        speckle = rng.random((32, 32)) < 0.08
        img[speckle] += rng.normal(0, 0.2, (int(speckle.sum()), 3))
        x[i] = np.round(np.clip(img, 0, 1) * 255) / 255
    return x, y.astype(np.int64)


# --------------------------------------------------------------------------- models


def _layers(tf: Any) -> Any:
    return tf.keras.layers


def position_embedding_layer(tf: Any) -> type:
    """Learned position embeddings added as a constant [SEQ_LEN, d] tensor: a plain ADD in TFLite."""

    class PositionEmbedding(tf.keras.layers.Layer):
        def build(self, input_shape: Any) -> None:
            init = tf.keras.initializers.RandomNormal(stddev=0.02)
            self.pos = self.add_weight(name="pos", shape=(input_shape[1], input_shape[2]), initializer=init)

        def call(self, x: Any) -> Any:
            return x + self.pos

    return PositionEmbedding


def build_teacher(tf: Any) -> Any:
    """BERT-like: embedding + position, 3 post-LN encoder layers (d 96, 4 heads, ff 384), mean pool.

    A kernel-3 convolution over the embeddings hands each position its neighbours. Without it the
    attention-only encoder stalled near 0.75 validation accuracy: whether it learns "the negator
    right before me" in 8 epochs depended on the seed (0.75 to 0.88), too fragile for a rebuild.
    No attention mask: a -1e9 mask term would wreck full-int8 ranges; the model learns to ignore
    the [PAD] embedding instead. ReLU instead of GELU keeps every op int8-friendly in TFLite 2.14.
    Dropout 0.1 as in BERT (it overfit after ~4 epochs without); it disappears in the TFLite graph.
    """
    L = _layers(tf)
    d, heads, ff = 96, 4, 384
    ids = tf.keras.Input(shape=(SEQ_LEN,), dtype=tf.int32, name="token_ids")
    x = L.Embedding(VOCAB_SIZE, d, name="embed")(ids)
    x = L.Conv1D(d, 3, padding="same", name="embed_trigram")(x)
    x = position_embedding_layer(tf)(name="position")(x)
    x = L.LayerNormalization(epsilon=1e-6, name="embed_norm")(x)
    for i in range(3):
        a = L.MultiHeadAttention(heads, d // heads, dropout=0.1, name=f"l{i}_attn")(x, x)
        x = L.LayerNormalization(epsilon=1e-6, name=f"l{i}_norm1")(L.Add()([x, a]))
        f = L.Dense(ff, activation="relu", name=f"l{i}_ff1")(x)
        f = L.Dropout(0.1, name=f"l{i}_drop")(L.Dense(d, name=f"l{i}_ff2")(f))
        x = L.LayerNormalization(epsilon=1e-6, name=f"l{i}_norm2")(L.Add()([x, f]))
    x = L.GlobalAveragePooling1D(name="pool")(x)
    out = L.Dense(3, activation="softmax", name="classifier")(x)
    return tf.keras.Model(ids, out, name="tweet_large")


def build_mobile(tf: Any) -> Any:
    """MobileBERT-style: embedding 32 widened to 64, 2 layers that work inside a 32-wide bottleneck.

    Like MobileBERT, the narrow embedding is widened by a trigram convolution (kernel 3), which
    also hands every position its neighbours, so negation is learnt quickly. Each layer maps
    64 -> 32, runs attention (2 heads) and a 32-64-32 feed-forward there, then maps back to 64
    with a residual around the whole block.
    """
    L = _layers(tf)
    ids = tf.keras.Input(shape=(SEQ_LEN,), dtype=tf.int32, name="token_ids")
    x = L.Embedding(VOCAB_SIZE, 32, name="embed")(ids)
    x = L.Conv1D(64, 3, padding="same", name="embed_trigram")(x)
    x = position_embedding_layer(tf)(name="position")(x)
    x = L.LayerNormalization(epsilon=1e-6, name="embed_norm")(x)
    for i in range(2):
        inner = L.Dense(32, name=f"l{i}_bottleneck_in")(x)
        a = L.MultiHeadAttention(2, 16, name=f"l{i}_attn")(inner, inner)
        h = L.LayerNormalization(epsilon=1e-6, name=f"l{i}_norm1")(L.Add()([inner, a]))
        f = L.Dense(64, activation="relu", name=f"l{i}_ff1")(h)
        f = L.Dense(32, name=f"l{i}_ff2")(f)
        h = L.LayerNormalization(epsilon=1e-6, name=f"l{i}_norm2")(L.Add()([h, f]))
        up = L.Dense(64, name=f"l{i}_bottleneck_out")(h)
        x = L.LayerNormalization(epsilon=1e-6, name=f"l{i}_norm3")(L.Add()([x, up]))
    x = L.GlobalAveragePooling1D(name="pool")(x)
    out = L.Dense(3, activation="softmax", name="classifier")(x)
    return tf.keras.Model(ids, out, name="tweet_mobile")


def build_bert3(tf: Any) -> Any:
    """BERT-style with the three inputs of every Hugging Face BERT export, kept tiny for the demo.

    input_ids (word embedding, 1000 rows), token_type_ids (token type embedding, 2 rows) and
    attention_mask (1 = token, 0 = padding). The mask zeroes padded positions before and after
    the encoder (a MUL, as a padding mask is used), not as a -1e9 attention bias: that would wreck
    full-int8 ranges (see build_teacher). One post-LN encoder layer, d_model 32, 2 heads, ff 64.
    """
    L = _layers(tf)
    d = 32
    ids = tf.keras.Input(shape=(SEQ_LEN,), dtype=tf.int32, name="input_ids")
    mask = tf.keras.Input(shape=(SEQ_LEN,), dtype=tf.int32, name="attention_mask")
    types = tf.keras.Input(shape=(SEQ_LEN,), dtype=tf.int32, name="token_type_ids")
    m = L.Reshape((SEQ_LEN, 1), name="mask_3d")(tf.cast(mask, tf.float32))
    x = L.Add(name="embed_sum")([L.Embedding(VOCAB_SIZE, d, name="embed")(ids),
                                 L.Embedding(2, d, name="token_type_embed")(types)])
    x = L.Conv1D(d, 3, padding="same", name="embed_trigram")(x)
    x = position_embedding_layer(tf)(name="position")(x)
    x = L.Multiply(name="mask_embed")([L.LayerNormalization(epsilon=1e-6, name="embed_norm")(x), m])
    a = L.MultiHeadAttention(2, d // 2, name="l0_attn")(x, x)
    x = L.LayerNormalization(epsilon=1e-6, name="l0_norm1")(L.Add()([x, a]))
    f = L.Dense(d, name="l0_ff2")(L.Dense(2 * d, activation="relu", name="l0_ff1")(x))
    x = L.LayerNormalization(epsilon=1e-6, name="l0_norm2")(L.Add()([x, f]))
    x = L.GlobalAveragePooling1D(name="pool")(L.Multiply(name="mask_pool")([x, m]))
    out = L.Dense(3, activation="softmax", name="classifier")(x)
    return tf.keras.Model([ids, mask, types], out, name="tweet_bert3")


def build_cnn(tf: Any) -> Any:
    L = _layers(tf)
    img = tf.keras.Input(shape=(32, 32, 3), dtype=tf.float32, name="image")
    x = img
    for i, ch in enumerate((16, 32, 32)):
        x = L.Conv2D(ch, 3, padding="same", activation="relu", name=f"conv{i}")(x)
        x = L.MaxPooling2D(2, name=f"pool{i}")(x)
    x = L.Flatten(name="flatten")(x)
    x = L.Dense(32, activation="relu", name="fc")(x)
    out = L.Dense(4, activation="softmax", name="classifier")(x)
    return tf.keras.Model(img, out, name="shapes_cnn")


# --------------------------------------------------------------------------- build


def set_seeds(tf: Any, seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    tf.random.set_seed(seed)


def train(tf: Any, model: Any, data: dict, epochs: int, lr: float, batch: int = 64) -> tuple[float, float]:
    """Fit and return (Keras validation accuracy, accuracy on the held-out eval set)."""
    model.compile(
        optimizer=tf.keras.optimizers.Adam(lr),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    t0 = time.time()
    model.fit(
        data["x_train"],
        data["y_train"],
        validation_data=(data["x_val"], data["y_val"]),
        epochs=epochs,
        batch_size=batch,
        verbose=2,
        shuffle=True,
    )
    val = float(model.evaluate(data["x_val"], data["y_val"], verbose=0)[1])
    ev = float(model.evaluate(data["x_eval"], data["y_eval"], verbose=0)[1])
    print(
        f"  {model.name}: {model.count_params()} params, val acc {val:.3f}, eval acc {ev:.3f} "
        f"({time.time() - t0:.0f} s)"
    )
    return val, ev


def _feed(inp: dict, x: np.ndarray) -> np.ndarray:
    if inp["dtype"] in (np.int8, np.uint8):
        scale, zp = inp["quantization"]
        info = np.iinfo(inp["dtype"])
        return np.clip(np.round(x / scale) + zp, info.min, info.max).astype(inp["dtype"])
    return x.astype(inp["dtype"])


def batch_resizable(tf: Any, folder: Path, variants: tuple[str, ...], x: np.ndarray) -> bool:
    """True when every variant runs at batch 4 after resize_tensor_input and matches batch 1.

    This probes TF 2.14's own interpreter (the same kernels as tflite-runtime 2.14); the zoo
    README records the check in ai-edge-litert and tflite-runtime too.
    """
    for v in variants:
        try:
            interp = tf.lite.Interpreter(model_path=str(folder / f"{v}.tflite"))
            inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
            interp.allocate_tensors()
            singles = []
            for i in range(4):
                interp.set_tensor(inp["index"], _feed(inp, x[i : i + 1]))
                interp.invoke()
                singles.append(interp.get_tensor(out["index"])[0].copy())
            interp.resize_tensor_input(inp["index"], [4, *x.shape[1:]])
            interp.allocate_tensors()
            interp.set_tensor(inp["index"], _feed(inp, x[:4]))
            interp.invoke()
            got = interp.get_tensor(out["index"]).astype(np.float32)
            if got.shape[0] != 4 or not np.allclose(got, np.array(singles, dtype=np.float32), atol=2.0):
                print(f"  {folder.name}/{v}: batch 4 does not match batch 1")
                return False
        except Exception as exc:  # noqa: BLE001 - any failure means "not resizable"
            print(f"  {folder.name}/{v}: resize failed: {exc}")
            return False
    return True


def build_family(
    tf: Any, name: str, model: Any, data: dict, out_root: Path, extra: dict, epochs: int, lr: float
) -> dict:
    print(f"== {name}")
    val, ev = train(tf, model, data, epochs, lr)
    folder = out_root / name
    if folder.exists():
        shutil.rmtree(folder)
    extra = {
        **extra,
        "keras_val_accuracy": round(val, 4),
        "keras_eval_accuracy": round(ev, 4),
        "params": int(model.count_params()),
    }
    family = convert_family(
        model,
        folder,
        variants=ZOO_VARIANTS,
        calibration=data["x_train"][:N_CALIB],
        int8_io=True,
        name=name,
        eval_set=(data["x_eval"], data["y_eval"]),
        extra=extra,
    )
    if family["failed"]:
        raise SystemExit(f"{name}: variants failed to convert: {family['failed']}")
    family["resizable_batch"] = batch_resizable(tf, folder, ZOO_VARIANTS, data["x_eval"])
    (folder / "family.json").write_text(json.dumps(family, indent=2) + "\n")
    sizes = ", ".join(f"{v} {e['size'] / 1024:.0f} KiB" for v, e in family["variants"].items())
    print(f"  wrote {folder}: {sizes}; resizable batch: {family['resizable_batch']}")
    return family


BERT3_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def bert3_inputs(x: np.ndarray) -> dict[str, np.ndarray]:
    """The three BERT inputs for token ids: the mask marks tokens, the second half of the tweet is type 1."""
    mask = (x != 0).astype(np.int32)
    lengths = mask.sum(axis=1, keepdims=True)
    types = ((np.arange(x.shape[1])[None, :] >= (lengths + 1) // 2) & (mask == 1)).astype(np.int32)
    return {"input_ids": x.astype(np.int32), "attention_mask": mask, "token_type_ids": types}


def _multi_batch_ok(tf: Any, path: Path, xs: dict[str, np.ndarray]) -> bool:
    """Every input resized to batch 4 gives the same outputs as four batch-1 runs."""
    try:
        interp = tf.lite.Interpreter(model_path=str(path))
        runner = interp.get_signature_runner()
        singles = [runner(**{k: v[i : i + 1] for k, v in xs.items()}) for i in range(4)]
        four = runner(**{k: v[:4] for k, v in xs.items()})
        key = next(iter(four))
        want = np.concatenate([s[key] for s in singles]).astype(np.float32)
        return bool(np.allclose(four[key].astype(np.float32), want, atol=2.0))
    except Exception as exc:  # noqa: BLE001 - any failure means "not resizable"
        print(f"  {path}: resize failed: {exc}")
        return False


def build_multi_family(
    tf: Any, name: str, model: Any, data: dict, out_root: Path, extra: dict, epochs: int, lr: float
) -> dict:
    """build_family for a model with several inputs: convert_family calibrates single-input models only.

    The eval set stores one array per input, named x_<input name> (what the agent reads).
    """
    from benchbot.models.convert import _describe

    print(f"== {name}")
    val, ev = train(tf, model, data, epochs, lr)
    folder = out_root / name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    calib = {k: v[:N_CALIB] for k, v in data["x_train"].items()}

    def representative() -> Any:
        for i in range(N_CALIB):
            yield {k: v[i : i + 1] for k, v in calib.items()}

    variants: dict[str, dict] = {}
    for variant in ZOO_VARIANTS:
        conv = tf.lite.TFLiteConverter.from_keras_model(model)
        settings: dict[str, Any] = {}
        if variant != "fp32":
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            settings["optimizations"] = ["DEFAULT"]
        if variant == "fp16":
            conv.target_spec.supported_types = [tf.float16]
            settings["supported_types"] = ["float16"]
        if variant == "int8":
            conv.representative_dataset = representative
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            conv.inference_output_type = tf.int8
            settings.update(representative_samples=N_CALIB, supported_ops=["TFLITE_BUILTINS_INT8"],
                            inference_output_type="int8")
        content = bytes(conv.convert())
        (folder / f"{variant}.tflite").write_bytes(content)
        variants[variant] = {
            "file": f"{variant}.tflite",
            "size": len(content),
            "sha256": hashlib.sha256(content).hexdigest(),
            "settings": settings,
            **_describe(tf, content),
        }
    np.savez_compressed(folder / "eval.npz", y=data["y_eval"].astype(np.int64),
                        **{f"x_{k}": v for k, v in data["x_eval"].items()})
    family = {
        "format": "benchbot-family",
        "version": 1,
        "name": name,
        "baseline": "fp32",
        "task": "classification",
        "source": f"keras-model:{model.name}",
        "converter": {"tensorflow": tf.__version__},
        "eval": "eval.npz",
        "variants": variants,
        "failed": {},
        **extra,
        "keras_val_accuracy": round(val, 4),
        "keras_eval_accuracy": round(ev, 4),
        "params": int(model.count_params()),
    }
    family["resizable_batch"] = all(_multi_batch_ok(tf, folder / f"{v}.tflite", data["x_eval"]) for v in ZOO_VARIANTS)
    (folder / "family.json").write_text(json.dumps(family, indent=2) + "\n")
    sizes = ", ".join(f"{v} {e['size'] / 1024:.0f} KiB" for v, e in variants.items())
    print(f"  wrote {folder}: {sizes}; resizable batch: {family['resizable_batch']}")
    return family


def _split(x: np.ndarray, y: np.ndarray, n_val: int) -> dict:
    """Last N_EVAL samples are the held-out eval set, the n_val before them Keras validation."""
    n_train = len(x) - n_val - N_EVAL
    return {
        "x_train": x[:n_train],
        "y_train": y[:n_train],
        "x_val": x[n_train : n_train + n_val],
        "y_val": y[n_train : n_train + n_val],
        "x_eval": x[n_train + n_val :],
        "y_eval": y[n_train + n_val :],
    }


TEXT_NOTE = (
    f"int32 token ids, shape [batch, {SEQ_LEN}]: id 1 ([CLS]) first, then the tweet, 0 = [PAD] after it; "
    f"ids < {VOCAB_SIZE} (vocab.txt, line n = id n). Random ids >= {VOCAB_SIZE} are out of vocabulary. "
    "The int8 variant keeps int32 ids in and gives int8 scores out (dequantize with the output scale)."
)
TEXT_DATA = (
    "Generated tweet-like reputation polarity (RepLab-style negative/neutral/positive) data, "
    f"seed {SEED}: polarity words, negators that flip the next polarity word, intensifiers, "
    "~3% label noise. "
)
TEACHER_DESC = (
    "Teacher: BERT-like encoder (trigram conv on the embeddings, learned positions), 3 layers, "
    "d_model 96, 4 heads, ff 384, post-LayerNorm, ReLU, mean pooling."
)
MOBILE_DESC = (
    "MobileBERT-style student: embedding 32 widened to 64 by a trigram conv, 2 bottlenecked layers "
    "(inner width 32, 2 heads, ff 64), mean pooling."
)
SHAPES_DESC = (
    f"Generated 32x32 RGB shapes, seed {SEED + 10}: horizontal stripes, vertical stripes, filled "
    "circle, filled square; random colours, sizes, positions and noise. 3 conv+pool layers, "
    "dense 32, softmax."
)
SHAPES_NOTE = (
    "float32 RGB image [batch, 32, 32, 3] in [0, 1]. The int8 variant takes int8 input and gives "
    "int8 output: quantize with the input tensor's scale/zero_point, dequantize the output."
)
BERT3_DESC = (
    "BERT-style with the three inputs of a Hugging Face BERT export: input_ids, attention_mask (1 = token, "
    "0 = padding; it zeroes padded positions) and token_type_ids (a 2-row token type embedding; the second "
    "half of each tweet is type 1). Trigram conv on the embeddings, learned positions, 1 post-LN encoder "
    "layer (d_model 32, 2 heads, ff 64), masked mean pooling."
)
BERT3_NOTE = (
    f"three int32 inputs [batch, {SEQ_LEN}]: input_ids (ids < {VOCAB_SIZE}, vocab.txt), attention_mask "
    "(0/1) and token_type_ids (0/1). eval.npz holds x_input_ids, x_attention_mask, x_token_type_ids and y."
)
FAMILIES = ("tweet-large", "tweet-mobile", "shapes-cnn", "tweet-bert3")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ZOO_DIR, help="zoo folder (default: the package's zoo/)")
    parser.add_argument("--only", nargs="*", choices=FAMILIES, help="build only these families")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    wanted = set(args.only or FAMILIES)
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"TensorFlow {tf.__version__}, numpy {np.__version__}")

    gen = TweetGenerator(np.random.default_rng(SEED))
    tx, ty = gen.batch(24000)
    tweets = _split(tx, ty, n_val=2000)
    counts = np.bincount(tweets["y_train"], minlength=3).tolist()
    print(f"tweets: {len(tx)} samples, train label counts {dict(zip(TWEET_LABELS, counts, strict=True))}")
    text = {"labels": TWEET_LABELS, "input_note": TEXT_NOTE}
    families = []
    if "tweet-large" in wanted:
        set_seeds(tf, SEED + 1)
        extra = {"description": TEXT_DATA + TEACHER_DESC, **text}
        families.append(build_family(tf, "tweet-large", build_teacher(tf), tweets, args.out, extra, 5, 1e-3))
    if "tweet-mobile" in wanted:
        set_seeds(tf, SEED + 2)
        extra = {"description": TEXT_DATA + MOBILE_DESC, **text}
        families.append(build_family(tf, "tweet-mobile", build_mobile(tf), tweets, args.out, extra, 6, 2e-3))
    if "tweet-bert3" in wanted:
        set_seeds(tf, SEED + 4)
        bert = {k: bert3_inputs(tweets[k]) if k.startswith("x_") else v for k, v in tweets.items()}
        extra = {"description": TEXT_DATA + BERT3_DESC, "labels": TWEET_LABELS, "input_note": BERT3_NOTE}
        families.append(build_multi_family(tf, "tweet-bert3", build_bert3(tf), bert, args.out, extra, 6, 2e-3))
    for fam in families:
        (args.out / fam["name"] / "vocab.txt").write_text("\n".join(gen.vocab) + "\n")
    if "shapes-cnn" in wanted:
        ix, iy = make_shapes(np.random.default_rng(SEED + 10), 6000)
        set_seeds(tf, SEED + 3)
        extra = {"description": SHAPES_DESC, "labels": SHAPE_LABELS, "input_note": SHAPES_NOTE}
        build_family(tf, "shapes-cnn", build_cnn(tf), _split(ix, iy, n_val=600), args.out, extra, 8, 2e-3)


if __name__ == "__main__":
    main()
