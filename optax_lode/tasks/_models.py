"""The tasks' networks, in flax nnx.

Every model is called as ``model(x, train=..., key=...)``: ``train`` switches
dropout on and batch normalisation to batch statistics, ``key`` is the dropout
key (ignored by models without dropout). The tasks use them through nnx's
functional API (``nnx.split`` / ``nnx.merge``, see ``docs/tasks.md``), so one
run is a pure function that ``jax.vmap`` can map over runs.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Float, Int, PRNGKeyArray


def _dropout_keys(key: PRNGKeyArray | None, n: int) -> list[PRNGKeyArray | None]:
    if key is None:
        return [None] * n
    return list(jax.random.split(key, n))


class PatchConv(nnx.Module):
    """A convolution computed as image patches times a kernel matrix.

    Same maths as ``nnx.Conv`` (channels-last, ``SAME`` padding), but
    ``vmap``-friendly: batching ``lax.conv`` over runs with per-run kernels
    turns it into a grouped convolution, which XLA on CPU runs very slowly
    (several times slower than this form in a sweep: ``python -m
    benchmarks.design_choices`` measures it); patches times kernel batches
    into an ordinary batched matmul.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        kernel_size: tuple[int, ...],
        *,
        strides: tuple[int, ...] | None = None,
        rngs: nnx.Rngs,
    ):
        shape = (*kernel_size, in_features, out_features)
        self.kernel = nnx.Param(nnx.initializers.lecun_normal()(rngs.params(), shape))
        self.bias = nnx.Param(jnp.zeros((out_features,)))
        self.kernel_size = tuple(kernel_size)
        self.strides = tuple(strides or (1,) * len(kernel_size))

    def __call__(self, x: Float[Array, "batch *spatial cin"]) -> Array:
        nd = len(self.kernel_size)
        spatial = "HWD"[:nd]
        dn = (f"N{spatial}C", f"{spatial}IO", f"N{spatial}C")
        patches = jax.lax.conv_general_dilated_patches(
            x, self.kernel_size, self.strides, "SAME", dimension_numbers=dn
        )
        # Patch features are ordered (channel, *window): match the kernel.
        k = self.kernel[...]
        perm = (nd, *range(nd), nd + 1)
        k = jnp.transpose(k, perm).reshape(-1, k.shape[-1])
        return patches @ k + self.bias[...]


class MLP(nnx.Module):
    """Fully connected ReLU network on flattened inputs."""

    def __init__(
        self, in_features: int, hidden: tuple[int, ...], classes: int, *, rngs
    ):
        sizes = (in_features, *hidden)
        self.hidden = nnx.List(
            [nnx.Linear(a, b, rngs=rngs) for a, b in itertools.pairwise(sizes)]
        )
        self.out = nnx.Linear(sizes[-1], classes, rngs=rngs)

    def __call__(
        self, x: Float[Array, "batch ..."], *, train: bool = False, key=None
    ) -> Float[Array, "batch classes"]:
        del train, key  # no dropout, no batch statistics
        x = x.reshape(x.shape[0], -1)
        for layer in self.hidden:
            x = jax.nn.relu(layer(x))
        return self.out(x)


class CNN1D(nnx.Module):
    """MNIST-1D's reference convnet: three strided 1-D convolutions, then a
    linear read-out (Greydanus 2020, ``ConvBase``)."""

    def __init__(self, length: int, channels: int, classes: int, *, rngs):
        self.convs = nnx.List(
            [
                PatchConv(1, channels, (5,), strides=(2,), rngs=rngs),
                PatchConv(channels, channels, (3,), strides=(2,), rngs=rngs),
                PatchConv(channels, channels, (3,), strides=(2,), rngs=rngs),
            ]
        )
        out_len = length
        for _ in range(3):
            out_len = -(-out_len // 2)
        self.out = nnx.Linear(out_len * channels, classes, rngs=rngs)

    def __call__(
        self, x: Float[Array, "batch length"], *, train: bool = False, key=None
    ) -> Float[Array, "batch classes"]:
        del train, key
        x = x[..., None]  # (batch, length, 1): nnx.Conv is channels-last
        for conv in self.convs:
            x = jax.nn.relu(conv(x))
        return self.out(x.reshape(x.shape[0], -1))


class SmallCNN(nnx.Module):
    """A small 2-D convnet for the 8x8 digits: two 3x3 convolutions, a 2x2
    max-pool and a linear read-out."""

    def __init__(self, side: int, channels: int, classes: int, *, rngs):
        self.conv1 = PatchConv(1, channels, (3, 3), rngs=rngs)
        self.conv2 = PatchConv(channels, 2 * channels, (3, 3), rngs=rngs)
        self.out = nnx.Linear((side // 2) ** 2 * 2 * channels, classes, rngs=rngs)

    def __call__(
        self, x: Float[Array, "batch h w"], *, train: bool = False, key=None
    ) -> Float[Array, "batch classes"]:
        del train, key
        x = jax.nn.relu(self.conv1(x[..., None]))
        x = jax.nn.relu(self.conv2(x))
        x = nnx.max_pool(x, (2, 2), strides=(2, 2))
        return self.out(x.reshape(x.shape[0], -1))


class PaperCNN(nnx.Module):
    """The paper's Fashion-MNIST CNN (A.1).

    Two 3x3 convolution-ReLU layers of 64 channels, 2x2 max-pool, dropout 0.25;
    the same with 128 channels; a 256-unit ReLU layer with dropout; a linear
    read-out. The paper does not give the last dropout rate: 0.5 here (the
    usual choice for this Keras-style architecture).
    """

    def __init__(self, side: int, in_channels: int, classes: int, *, rngs):
        c = (64, 128)
        self.convs = nnx.List(
            [
                nnx.Conv(in_channels, c[0], (3, 3), padding="SAME", rngs=rngs),
                nnx.Conv(c[0], c[0], (3, 3), padding="SAME", rngs=rngs),
                nnx.Conv(c[0], c[1], (3, 3), padding="SAME", rngs=rngs),
                nnx.Conv(c[1], c[1], (3, 3), padding="SAME", rngs=rngs),
            ]
        )
        self.drop_conv = nnx.Dropout(0.25)
        self.fc = nnx.Linear((side // 4) ** 2 * c[1], 256, rngs=rngs)
        self.drop_fc = nnx.Dropout(0.5)
        self.out = nnx.Linear(256, classes, rngs=rngs)

    def __call__(
        self, x: Float[Array, "batch h w c"], *, train: bool = False, key=None
    ) -> Float[Array, "batch classes"]:
        keys = _dropout_keys(key, 3)
        for block in range(2):
            x = jax.nn.relu(self.convs[2 * block](x))
            x = jax.nn.relu(self.convs[2 * block + 1](x))
            x = nnx.max_pool(x, (2, 2), strides=(2, 2))
            x = self.drop_conv(x, deterministic=not train, rngs=keys[block])
        x = jax.nn.relu(self.fc(x.reshape(x.shape[0], -1)))
        x = self.drop_fc(x, deterministic=not train, rngs=keys[2])
        return self.out(x)


class _BasicBlock(nnx.Module):
    def __init__(self, cin: int, cout: int, stride: int, *, rngs):
        self.conv1 = nnx.Conv(
            cin, cout, (3, 3), strides=stride, padding=1, use_bias=False, rngs=rngs
        )
        self.bn1 = nnx.BatchNorm(cout, momentum=0.9, rngs=rngs)
        self.conv2 = nnx.Conv(cout, cout, (3, 3), padding=1, use_bias=False, rngs=rngs)
        self.bn2 = nnx.BatchNorm(cout, momentum=0.9, rngs=rngs)
        if stride != 1 or cin != cout:
            self.proj = nnx.Conv(
                cin, cout, (1, 1), strides=stride, use_bias=False, rngs=rngs
            )
            self.proj_bn = nnx.BatchNorm(cout, momentum=0.9, rngs=rngs)
        else:
            self.proj = None
            self.proj_bn = None

    def __call__(self, x, train: bool):
        ura = not train
        y = jax.nn.relu(self.bn1(self.conv1(x), use_running_average=ura))
        y = self.bn2(self.conv2(y), use_running_average=ura)
        if self.proj is not None:
            x = self.proj_bn(self.proj(x), use_running_average=ura)
        return jax.nn.relu(x + y)


class ResNet18(nnx.Module):
    """ResNet18 (He et al. 2016), CIFAR variant: a 3x3 stem without max-pool,
    four stages of two basic blocks (``width``, 2, 4, 8 x ``width`` channels),
    global average pooling and a linear read-out. ``width=64`` is the
    standard network."""

    def __init__(self, in_channels: int, classes: int, *, width: int = 64, rngs):
        self.stem = nnx.Conv(
            in_channels, width, (3, 3), padding=1, use_bias=False, rngs=rngs
        )
        self.stem_bn = nnx.BatchNorm(width, momentum=0.9, rngs=rngs)
        blocks = []
        cin = width
        for stage, mult in enumerate((1, 2, 4, 8)):
            cout = width * mult
            for i in range(2):
                stride = 2 if (stage > 0 and i == 0) else 1
                blocks.append(_BasicBlock(cin, cout, stride, rngs=rngs))
                cin = cout
        self.blocks = nnx.List(blocks)
        self.out = nnx.Linear(cin, classes, rngs=rngs)

    def __call__(
        self, x: Float[Array, "batch h w c"], *, train: bool = False, key=None
    ) -> Float[Array, "batch classes"]:
        del key
        x = jax.nn.relu(self.stem_bn(self.stem(x), use_running_average=not train))
        for block in self.blocks:
            x = block(x, train)
        return self.out(jnp.mean(x, axis=(1, 2)))


class _GPTBlock(nnx.Module):
    def __init__(self, dim: int, heads: int, dropout: float, *, rngs):
        self.attn = nnx.MultiHeadAttention(
            num_heads=heads,
            in_features=dim,
            decode=False,
            dropout_rate=0.0,
            rngs=rngs,
        )
        self.ln1 = nnx.LayerNorm(dim, rngs=rngs)
        self.fc1 = nnx.Linear(dim, 4 * dim, rngs=rngs)
        self.fc2 = nnx.Linear(4 * dim, dim, rngs=rngs)
        self.ln2 = nnx.LayerNorm(dim, rngs=rngs)
        self.drop = nnx.Dropout(dropout)

    def __call__(self, x, mask, train: bool, key):
        k1, k2 = _dropout_keys(key, 2)
        a = self.attn(x, mask=mask, deterministic=True)
        # Post-LN, as the paper's miniGPT: normalise after each residual sum.
        x = self.ln1(x + self.drop(a, deterministic=not train, rngs=k1))
        h = self.fc2(jax.nn.gelu(self.fc1(x)))
        return self.ln2(x + self.drop(h, deterministic=not train, rngs=k2))


class MiniGPT(nnx.Module):
    """The paper's miniGPT (A.1), scaled down: token and learned position
    embeddings, ``layers`` blocks of causal multi-head self-attention and a
    4x MLP with dropout and post-residual layer norm, a linear read-out."""

    def __init__(
        self,
        vocab: int,
        context: int,
        *,
        dim: int = 64,
        heads: int = 4,
        layers: int = 2,
        dropout: float = 0.1,
        rngs,
    ):
        self.tok = nnx.Embed(vocab, dim, rngs=rngs)
        self.pos = nnx.Embed(context, dim, rngs=rngs)
        self.blocks = nnx.List(
            [_GPTBlock(dim, heads, dropout, rngs=rngs) for _ in range(layers)]
        )
        self.out = nnx.Linear(dim, vocab, rngs=rngs)
        self.context = context

    def __call__(
        self, x: Int[Array, "batch seq"], *, train: bool = False, key=None
    ) -> Float[Array, "batch seq vocab"]:
        seq = x.shape[-1]
        h = self.tok(x) + self.pos(jnp.arange(seq))
        mask = nnx.make_causal_mask(x)
        for block, k in zip(
            self.blocks, _dropout_keys(key, len(self.blocks)), strict=True
        ):
            h = block(h, mask, train, k)
        return self.out(h)
