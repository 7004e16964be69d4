"""Attention: MatMul and Einsum with both operands on the path, Softmax inside the network, and a
small self-attention block (patchify Conv, class token, softmax(QKᵀ/√d)·V, residual, x[:, 0])
under the adjoint test in both emitted forms."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from onnxviz.errors import UnsupportedOpError
from tests.helpers import Linearisation, make_model
from tests.inverse.adjoint import assert_adjoint

SHAPE = (1, 2, 4, 6)


def _x(seed: int, shape: tuple[int, ...] = SHAPE) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _w(seed: int, *shape: int) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(shape) / np.sqrt(shape[0])).astype(np.float32)


def _two_signals(a_shape: list[int], b_shape: list[int]) -> list:
    """Two tensors computed from the image: a = reshape(x), b = reshape(x·x)."""
    return [
        helper.make_node("Reshape", ["x", "a_shape"], ["a"], name="as_a"),
        helper.make_node("Mul", ["x", "x"], ["sq"], name="square"),
        helper.make_node("Reshape", ["sq", "b_shape"], ["b"], name="as_b"),
    ], {"a_shape": np.array(a_shape, np.int64), "b_shape": np.array(b_shape, np.int64)}


@pytest.mark.parametrize(
    ("a_shape", "b_shape"),
    [
        ([1, 6, 8], [1, 8, 6]),  # both rank 3: Q·Kᵀ
        ([1, 2, 4, 6], [1, 2, 6, 4]),  # heads on axis 1
        ([1, 2, 4, 6], [1, 1, 6, 8]),  # the second operand broadcast over the heads
    ],
)
def test_matmul_of_two_signals_uses_the_product_rule(a_shape: list[int], b_shape: list[int]) -> None:
    nodes, inits = _two_signals(a_shape, b_shape)
    if np.prod(b_shape) != np.prod(SHAPE):
        nodes[2] = helper.make_node("Tile", ["sq", "reps"], ["tiled"], name="tile")
        nodes.append(helper.make_node("Reshape", ["tiled", "b_shape"], ["b"], name="as_b"))
        inits["reps"] = np.array([1, 1, 1, 2], np.int64)
    nodes.append(helper.make_node("MatMul", ["a", "b"], ["y"], name="product"))
    model = make_model(nodes, SHAPE, "y", inits)
    assert_adjoint(model, "y", _x(1), 2)


@pytest.mark.parametrize(
    ("weight_shape", "signal_first"),
    [((6,), True), ((6, 3), True), ((5, 4), False), ((4,), False)],
)
def test_matmul_with_a_constant_vector_or_matrix_on_either_side(weight_shape: tuple, signal_first: bool) -> None:
    inputs = ["x", "w"] if signal_first else ["w", "x"]
    model = make_model([helper.make_node("MatMul", inputs, ["y"], name="mm")], SHAPE, "y", {"w": _w(3, *weight_shape)})
    assert_adjoint(model, "y", _x(4), 5)


def test_batched_matmul_with_bias_and_gemm_head() -> None:
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["m"], name="mm"),
        helper.make_node("Add", ["m", "bias"], ["mb"], name="bias"),
        helper.make_node("Flatten", ["mb"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc", "fc_bias"], ["y"], transB=1, alpha=0.5, name="head"),
    ]
    inits = {"w": _w(6, 6, 3), "bias": _w(7, 3), "fc": _w(8, 5, 24), "fc_bias": _w(9, 5)}
    assert_adjoint(make_model(nodes, SHAPE, "y", inits), "y", _x(10), 11)


@pytest.mark.parametrize(
    ("equation", "second"),
    [
        ("bchw,wk->bchk", "constant"),
        ("bchw,bchw->bc", "signal"),
        ("...ij,...jk->...ik", "signal_t"),
        ("...ij,jk", "constant"),
        ("bchw->bwhc", None),
        ("bchw->bh", None),
        ("bchw,c->bhw", "constant_c"),
    ],
)
def test_einsum_gradients_are_einsums(equation: str, second: str | None) -> None:
    nodes = []
    inputs = ["x"]
    inits: dict[str, np.ndarray] = {}
    if second == "constant":
        inputs.append("w")
        inits["w"] = _w(12, 6, 3)
    elif second == "constant_c":
        inputs.append("w")
        inits["w"] = _w(12, 2)
    elif second == "signal":
        nodes.append(helper.make_node("Sigmoid", ["x"], ["s"], name="sigmoid"))
        inputs.append("s")
    elif second == "signal_t":
        nodes.append(helper.make_node("Transpose", ["x"], ["s"], perm=[0, 1, 3, 2], name="t"))
        inputs.append("s")
    nodes.append(helper.make_node("Einsum", inputs, ["y"], equation=equation, name="einsum"))
    assert_adjoint(make_model(nodes, SHAPE, "y", inits, opset=17), "y", _x(13), 14)


def test_einsum_broadcasting_a_length_one_ellipsis_axis_sums_it() -> None:
    nodes = [
        helper.make_node("ReduceMean", ["x"], ["m"], axes=[1], keepdims=1, name="mean"),
        helper.make_node("Einsum", ["x", "m"], ["y"], equation="...ij,...kj->...ik", name="einsum"),
    ]
    assert_adjoint(make_model(nodes, SHAPE, "y"), "y", _x(15), 16)


@pytest.mark.parametrize(("op", "axis", "opset"), [("Softmax", 2, 11), ("LogSoftmax", 1, 11), ("Softmax", 2, 13)])
def test_softmax_inside_the_network_on_any_axis(op: str, axis: int, opset: int) -> None:
    nodes = [
        helper.make_node(op, ["x"], ["s"], axis=axis, name="softmax"),
        helper.make_node("Mul", ["s", "w"], ["y"], name="scale"),
    ]
    model = make_model(nodes, SHAPE, "y", {"w": _w(17, 2, 4, 6)}, opset=opset)
    assert_adjoint(model, "y", _x(18), 19)


def _attention_block(use_einsum: bool, width: int = 8, heads: int = 2):
    """Patchify conv → tokens → [cls; tokens] + positions → multi-head self-attention → residual
    → the class token's output → linear head."""
    d = width // heads
    nodes = [
        helper.make_node("Conv", ["x", "patch_w", "patch_b"], ["p"], strides=[2, 2], name="patchify"),
        helper.make_node("Reshape", ["p", "flat_tokens"], ["pf"], name="flatten_tokens"),
        helper.make_node("Transpose", ["pf"], ["tokens"], perm=[0, 2, 1], name="tokens"),
        helper.make_node("Concat", ["cls", "tokens"], ["seq"], axis=1, name="with_cls"),
        helper.make_node("Add", ["seq", "positions"], ["h"], name="positions"),
    ]
    for name in ("q", "k", "v"):
        nodes += [
            helper.make_node("MatMul", ["h", f"w_{name}"], [f"{name}_lin"], name=f"{name}_proj"),
            helper.make_node("Add", [f"{name}_lin", f"b_{name}"], [f"{name}_flat"], name=f"{name}_bias"),
            helper.make_node("Reshape", [f"{name}_flat", "split_heads"], [f"{name}_split"], name=f"{name}_heads"),
            helper.make_node("Transpose", [f"{name}_split"], [name], perm=[0, 2, 1, 3], name=f"{name}_t"),
        ]
    if use_einsum:
        nodes.append(helper.make_node("Einsum", ["q", "k"], ["scores"], equation="bhqd,bhkd->bhqk", name="qk"))
    else:
        nodes += [
            helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2], name="k_transposed"),
            helper.make_node("MatMul", ["q", "kt"], ["scores"], name="qk"),
        ]
    nodes += [
        helper.make_node("Div", ["scores", "sqrt_d"], ["scaled"], name="scale"),
        helper.make_node("Softmax", ["scaled"], ["attn"], axis=-1, name="softmax"),
    ]
    if use_einsum:
        nodes.append(helper.make_node("Einsum", ["attn", "v"], ["ctx"], equation="bhqk,bhkd->bhqd", name="av"))
    else:
        nodes.append(helper.make_node("MatMul", ["attn", "v"], ["ctx"], name="av"))
    nodes += [
        helper.make_node("Transpose", ["ctx"], ["ctx_t"], perm=[0, 2, 1, 3], name="merge_t"),
        helper.make_node("Reshape", ["ctx_t", "merge_heads"], ["merged"], name="merge_heads"),
        helper.make_node("MatMul", ["merged", "w_o"], ["o"], name="out_proj"),
        helper.make_node("Add", ["o", "h"], ["res"], name="residual"),
        helper.make_node("Gather", ["res", "zero"], ["cls_out"], axis=1, name="cls_token"),
        helper.make_node("Gemm", ["cls_out", "head_w", "head_b"], ["y"], transB=1, name="head"),
    ]
    tokens = 1 + 2 * 3
    inits = {
        "patch_w": _w(20, width, 2, 2, 2),
        "patch_b": _w(21, width),
        "flat_tokens": np.array([1, width, 6], np.int64),
        "cls": _w(22, 1, 1, width),
        "positions": _w(23, 1, tokens, width),
        "split_heads": np.array([1, tokens, heads, d], np.int64),
        "merge_heads": np.array([1, tokens, width], np.int64),
        "sqrt_d": np.array(np.sqrt(d), np.float32),
        "w_o": _w(24, width, width),
        "zero": np.array(0, np.int64),
        "head_w": _w(25, 3, width),
        "head_b": _w(26, 3),
    }
    for i, name in enumerate(("q", "k", "v")):
        inits[f"w_{name}"] = _w(30 + i, width, width) * 2
        inits[f"b_{name}"] = _w(40 + i, width)
    return make_model(nodes, SHAPE, "y", inits)


@pytest.mark.parametrize("use_einsum", [False, True])
def test_self_attention_block_saliency_is_the_adjoint(use_einsum: bool) -> None:
    model = _attention_block(use_einsum)
    assert_adjoint(model, "y", _x(50), 51)


def test_attention_written_with_matmul_and_with_einsum_project_the_same() -> None:
    x = _x(52)
    seeds = np.random.default_rng(53).standard_normal((2, 3))
    by_matmul = Linearisation(_attention_block(False), "y", x).vjp(seeds)
    by_einsum = Linearisation(_attention_block(True), "y", x).vjp(seeds)
    np.testing.assert_allclose(by_matmul, by_einsum, rtol=1e-4, atol=1e-6)


def test_einsum_summing_the_batch_axis_is_refused() -> None:
    model = make_model([helper.make_node("Einsum", ["x"], ["y"], equation="bchw->chw", name="e")], SHAPE, "y")
    with pytest.raises(UnsupportedOpError, match="batch axis"):
        Linearisation(model, "y", _x(54))


@pytest.mark.parametrize("unbind", ["split", "gather"])
def test_timm_qkv_permute_moves_the_batch_axis_and_unbind_brings_it_back(unbind: str) -> None:
    """``qkv.reshape(B, N, 3, H, D).permute(2, 0, 3, 1, 4).unbind(0)``: the batch sits on axis 1
    between the Transpose and the unbind, and the K projections follow it there."""
    nodes = [
        helper.make_node("Reshape", ["x", "tokens_shape"], ["tokens"], name="tokens"),
        helper.make_node("MatMul", ["tokens", "w_qkv"], ["qkv"], name="qkv"),
        helper.make_node("Reshape", ["qkv", "heads_shape"], ["heads"], name="heads"),
        helper.make_node("Transpose", ["heads"], ["moved"], perm=[2, 0, 3, 1, 4], name="permute"),
    ]
    if unbind == "split":
        nodes.append(helper.make_node("Split", ["moved"], ["q1", "k1", "v1"], axis=0, num_outputs=3, name="unbind"))
        nodes += [helper.make_node("Squeeze", [f"{n}1", "zero_axis"], [n], name=f"squeeze_{n}") for n in "qkv"]
    else:
        nodes += [
            helper.make_node("Gather", ["moved", f"index_{i}"], [n], axis=0, name=f"select_{n}")
            for i, n in enumerate("qkv")
        ]
    nodes += [
        helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2], name="kt"),
        helper.make_node("MatMul", ["q", "kt"], ["scores"], name="qk"),
        helper.make_node("Softmax", ["scores"], ["attn"], axis=-1, name="softmax"),
        helper.make_node("MatMul", ["attn", "v"], ["y"], name="av"),
    ]
    inits = {
        "tokens_shape": np.array([1, 8, 6], np.int64),
        "w_qkv": _w(60, 6, 12),
        "heads_shape": np.array([1, 8, 3, 2, 2], np.int64),
        "zero_axis": np.array([0], np.int64),
        **{f"index_{i}": np.array(i, np.int64) for i in range(3)},
    }
    model = make_model(nodes, SHAPE, "y", inits, opset=18)
    assert_adjoint(model, "y", _x(61), 62)


def test_a_target_whose_batch_axis_is_merged_with_the_heads_is_refused() -> None:
    """The seed carries the K projections on axis 0; a target in (L, N, E) layout with N folded
    into the heads cannot take it, and says so rather than project wrongly."""
    nodes = [
        helper.make_node("Reshape", ["x", "tokens_shape"], ["tokens"], name="tokens"),
        helper.make_node("Transpose", ["tokens"], ["lne"], perm=[1, 0, 2], name="to_lne"),
        helper.make_node("MatMul", ["lne", "w"], ["proj"], name="proj"),
        helper.make_node("Reshape", ["proj", "heads_shape"], ["heads"], name="fold_heads"),
        helper.make_node("Transpose", ["heads"], ["y"], perm=[1, 0, 2], name="heads_first"),
    ]
    inits = {
        "tokens_shape": np.array([1, 8, 6], np.int64),
        "w": _w(63, 6, 6),
        "heads_shape": np.array([8, 2, 3], np.int64),
    }
    model = make_model(nodes, SHAPE, "y", inits)
    with pytest.raises(UnsupportedOpError, match="batch axis"):
        Linearisation(model, "y", _x(64))


@pytest.mark.torch
def test_torch_exported_attention_pads_and_resizes_match_autograd(tmp_path) -> None:
    """A TorchScript export mixing the new ops (timm's qkv permute + unbind, torch's multi-head
    attention in (L, N, E) with N folded into the heads, class token, reflect and replicate pads,
    bilinear/bicubic/nearest resizes, strided and flipped slices, pixel shuffle, max reductions,
    repeat): the saliency of the top three logits, in one run, equals torch's float64 autograd."""
    torch = pytest.importorskip("torch")
    import contextlib
    import io

    import onnxviz

    nn, functional = torch.nn, torch.nn.functional

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.patch = nn.Conv2d(3, 16, 4, stride=4)
            self.cls = nn.Parameter(torch.randn(1, 1, 16))
            self.pos = nn.Parameter(torch.randn(1, 17, 16) * 0.1)
            self.qkv, self.proj = nn.Linear(16, 48), nn.Linear(16, 16)
            self.mha = nn.MultiheadAttention(16, 4, batch_first=True)
            self.conv, self.mix = nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 1)
            self.head = nn.Linear(34, 5)

        def forward(self, x):
            t = self.patch(x).flatten(2).transpose(1, 2)
            t = torch.cat([self.cls.expand(x.shape[0], -1, -1), t], 1) + self.pos
            q, k, v = self.qkv(t).reshape(x.shape[0], 17, 3, 2, 8).permute(2, 0, 3, 1, 4).unbind(0)
            o = ((q @ k.transpose(-2, -1)) * 8**-0.5).softmax(-1) @ v
            t = t + self.proj(o.transpose(1, 2).reshape(x.shape[0], 17, 16))
            t = t + self.mha(t, t, t, need_weights=False)[0]
            c = functional.pad(self.conv(functional.pad(x, (1, 2, 2, 1), mode="reflect")), (1, 1, 0, 2), "replicate")
            c = functional.interpolate(c, scale_factor=0.5, mode="bilinear", align_corners=False)
            c = functional.interpolate(c, size=(13, 11), mode="bicubic", align_corners=True)
            c = functional.interpolate(c, scale_factor=2, mode="nearest")[:, :, ::2, 1::3].flip(-1)
            s = functional.pixel_shuffle(self.mix(c[:, :, :8, :8]), 2)
            pooled = [functional.adaptive_max_pool2d(c, 1).flatten(1), s.amax(dim=(1, 3)).mean(-1, keepdim=True)]
            pooled.append(c.repeat(1, 1, 2, 1).mean((1, 2, 3)).unsqueeze(1))
            return self.head(torch.cat([t[:, 0], *pooled, s.flatten(1)[:, :8]], 1))

    net = Net().eval()
    x = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    path = tmp_path / "net.onnx"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        torch.onnx.export(net, (x,), str(path), dynamo=False, opset_version=17)
    top = [int(i) for i in np.argsort(-net(x).detach().numpy()[0])[:3]]
    net.double()
    expected = []
    for k in top:
        x64 = x.double().requires_grad_(True)
        net(x64)[0, k].backward()
        expected.append(x64.grad.numpy()[0])
    model = onnxviz.load(str(path), device="cpu")
    got = model.project(x.numpy(), node=model.graph.output_names[0], channels=top, rule="saliency").projections
    for projection, reference in zip(got, expected, strict=True):
        np.testing.assert_allclose(projection, reference, rtol=0, atol=1e-4 * np.abs(reference).max())
        cosine = (projection * reference).sum() / np.linalg.norm(projection) / np.linalg.norm(reference)
        assert float(cosine) > 0.9999


def test_a_convolution_over_a_moved_batch_axis_is_refused() -> None:
    """Rules written for the batch on axis 0 refuse a tensor whose batch a Transpose moved."""
    nodes = [
        helper.make_node("Transpose", ["x"], ["swapped"], perm=[1, 0, 2, 3], name="swap"),
        helper.make_node("Conv", ["swapped", "w"], ["y"], name="conv"),
    ]
    model = make_model(nodes, SHAPE, "y", {"w": _w(67, 3, 1, 3, 3)})
    with pytest.raises(UnsupportedOpError, match="keeps the batch axis on axis 1"):
        Linearisation(model, "y", _x(68))


def test_attention_over_a_batch_merged_with_patches_projects_one_seed_at_a_time() -> None:
    """MobileViT's unfold: (1, C, H, W) → (patches·batch, tokens, C), attention on it, folded back.
    The batch axis merged into the patches cannot carry K projections through MatMul + Softmax, so
    the inverse is built for one projection (every axis data) and the seeds run one by one."""
    nodes = [
        helper.make_node("Reshape", ["x", "unfold"], ["h"], name="unfold"),  # (2, 4, 6): batch merged
        helper.make_node("Transpose", ["h"], ["ht"], perm=[1, 0, 2], name="tokens_first"),
        helper.make_node("Transpose", ["ht"], ["hb"], perm=[1, 0, 2], name="patches_first"),
        helper.make_node("MatMul", ["hb", "wq"], ["q"], name="query"),
        helper.make_node("Transpose", ["hb"], ["kt"], perm=[0, 2, 1], name="keys_t"),
        helper.make_node("MatMul", ["q", "kt"], ["scores"], name="scores"),
        helper.make_node("Softmax", ["scores"], ["attn"], axis=-1, name="softmax"),
        helper.make_node("MatMul", ["attn", "hb"], ["mixed"], name="mix"),
        helper.make_node("Mul", ["mixed", "gain"], ["scaled"], name="scale"),  # a constant broadcast over patches
        helper.make_node("Reshape", ["scaled", "fold"], ["y"], name="fold"),
    ]
    inits = {
        "unfold": np.array([2, 4, 6], np.int64),
        "fold": np.array(SHAPE, np.int64),
        "wq": _w(5, 6, 6),
        "gain": np.abs(_w(6, 2, 1, 6)) + 0.5,
    }
    model = make_model(nodes, SHAPE, "y", inits)
    lin = Linearisation(model, "y", _x(7), "saliency")
    assert lin.inverse.single, "the batch axis merged with the patches should be projected one seed at a time"
    assert_adjoint(model, "y", _x(7), 3)
