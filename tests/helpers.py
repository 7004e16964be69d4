"""Shared test machinery: toy graphs, the in-process CLI runner, and the adjoint (dot-product) check.

Graphs for tests are built here and nowhere else, through the package's own emitter
(``onnxviz.graph.emit``): ``make_model`` wraps a list of nodes (one declared output, its shape
left to inference), ``GraphBuilder`` grows a graph node by node with generated names and can
declare every node output with its type (what the numpy reference's self-check needs to compare
each intermediate tensor with onnxruntime).

The adjoint check is what proves an inverse graph right without trusting any of its parts:
for the linearisation J of the forward graph at x, ⟨J·u, v⟩ = ⟨u, Jᵀ·v⟩ for any u and v.
J·u is measured on the *forward* graph alone (onnxruntime), by central differences, which are
exact for piecewise-linear graphs as long as no ReLU or max switches between x ± εu; inputs are
built with well-separated values so that none does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

from onnxviz.graph.emit import GraphEmitter
from onnxviz.graph.model import ModelGraph
from onnxviz.inverse import InverseSpec, build_inverse
from onnxviz.passes.rewrite import forward_model

FIXTURES = Path(__file__).parent / "fixtures" / "models"
ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "models" / "demo.onnx"  # the bundled demo classifier (64x64, 10 classes)
OPSET = 17
IR_VERSION = 9  # accepted by every onnxruntime this project supports
# Every committed fixture, for tests that run on all of them.
FIXTURE_MODELS = [
    "vgg_like_torchscript.onnx",
    "vgg_like_dynamo.onnx",
    "resnet_like.onnx",
    "squeezenet_like.onnx",
    "mobilenet_like.onnx",
    "tf2onnx_nhwc.onnx",
    "opset9_zoo.onnx",
    "opset7_alexnet_like.onnx",
    "edge_cases.onnx",
]
# Small-width versions of the model families (scripts/make_fixtures.py), each exported by both
# torch exporters, with the torch saliency reference in family_<name>.npz.
FAMILY_NAMES = [
    "alexnet", "vgg_bn", "resnet", "resnext", "resnet_d", "res2net", "densenet", "squeezenet", "shufflenet_v2",
    "mobilenet_v2", "mobilenet_v3", "mnasnet", "efficientnet", "efficientnet_v2", "regnet", "convnext", "googlenet",
    "inception_v3", "xception", "dla", "dpn", "cspdarknet", "hrnet", "nf_resnet", "repvgg", "ghostnet", "rexnet",
    "mobilevit", "vit",
]  # fmt: skip
FAMILY_MODELS = [f"family_{name}_{exporter}.onnx" for name in FAMILY_NAMES for exporter in ("dynamo", "torchscript")]


def make_model(
    nodes: list[onnx.NodeProto],
    input_shape: tuple[int, ...],
    output: str,
    initializers: dict[str, np.ndarray] | None = None,
    opset: int = OPSET,
    input_name: str = "x",
) -> onnx.ModelProto:
    emit = GraphEmitter("test", opset=opset)
    emit.input(input_name, input_shape)
    for node in nodes:
        emit.append(node)
    for name, value in (initializers or {}).items():
        emit.initializer(name, np.asarray(value))
    emit.output(output)
    model = emit.model(ir_version=8)
    model.graph.output[0].type.tensor_type.shape.SetInParent()
    return model


class GraphBuilder:
    """A graph grown node by node: input ``x`` of a fixed shape, generated names, seeded weights.

    ``op`` appends a node and returns its first output's name, so a chain reads like the
    network (``a = g.op("Relu", [g.op("Conv", ["x", g.rand(4, 3, 3, 3)])])``). Names are
    ``<op><k>`` for nodes and their first output, ``<op><k>_<i>`` for further outputs and
    ``c<k>`` for constants: short and predictable, so a test can name a tensor it did not keep.
    """

    def __init__(self, x_shape: tuple[int, ...], opset: int = OPSET, rng: np.random.Generator | None = None) -> None:
        self.x_shape = x_shape
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.emit = GraphEmitter("g", opset=opset)
        self.emit.input("x", x_shape)
        self._count = 0

    @property
    def nodes(self) -> list[onnx.NodeProto]:
        return self.emit.nodes

    def const(self, value: np.ndarray | list | float, dtype: type = np.float32) -> str:
        self._count += 1
        return self.emit.initializer(f"c{self._count}", np.asarray(value, dtype=dtype))

    def rand(self, *shape: int, scale: float = 0.5) -> str:
        """A float32 initializer of seeded normal values (scaled so deep chains stay O(1))."""
        return self.const(self.rng.standard_normal(shape) * scale)

    def op(self, op_type: str, inputs: list[str], n_out: int = 1, **attrs: object) -> str:
        """Append a node; returns its first output (further outputs are ``<first>_<i>``)."""
        self._count += 1
        base = f"{op_type.lower()}{self._count}"
        outputs = [base] + [f"{base}_{i}" for i in range(1, n_out)]
        return self.emit.op(op_type, inputs, outputs=outputs, name=base, **attrs)

    def done(self, target: str) -> tuple[onnx.ModelProto, str]:
        """(model, target) with every node output declared, once ``target``'s node is added."""
        return self.model(), target

    def model(self, outputs: list[str] | None = None) -> onnx.ModelProto:
        """The model; by default every node output is a graph output.

        Output element types come from evaluating the graph once with the numpy reference
        (``tests/reference.py``), since onnx shape inference cannot type every op it builds.
        """
        from tests import reference

        model = self.emit.model(ir_version=IR_VERSION)
        names = [o for n in self.nodes for o in n.output if o] if outputs is None else outputs
        values = reference.forward(model, np.zeros(self.x_shape)) if names else {}
        for name in names:
            value = values[name]
            if value.dtype == bool:
                elem = TensorProto.BOOL
            else:
                elem = TensorProto.FLOAT if reference._is_float(value) else TensorProto.INT64
            model.graph.output.append(helper.make_tensor_value_info(name, elem, None))
        return model


def fixed_batch_classifier(size: int, flatten_shape: list[int], seed: int = 0) -> onnx.ModelProto:
    """conv → relu → Reshape(flatten_shape, hard-coding the exported batch of 1) → Gemm."""
    rng = np.random.default_rng(seed)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Reshape", ["r", "shape"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc"], ["y"], transB=1, name="fc"),
    ]
    inits = {
        "w": rng.standard_normal((2, 3, 3, 3)).astype(np.float32),
        "shape": np.array(flatten_shape, np.int64),
        "fc": rng.standard_normal((4, 2 * size * size)).astype(np.float32),
    }
    return make_model(nodes, (1, 3, size, size), "y", inits)


def session(model: onnx.ModelProto) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def separated_input(shape: tuple[int, ...], rng: np.random.Generator, spacing: float = 0.05) -> np.ndarray:
    """Distinct values at least ``spacing`` apart and away from 0: no ties, no ReLU at its kink."""
    count = int(np.prod(shape))
    grid = (np.arange(count) - count / 2 + 0.5) * spacing
    return rng.permutation(grid).reshape(shape).astype(np.float32)


class Linearisation:
    """Forward values at x and the inverse graph of ``target``, for one model and one mode."""

    def __init__(
        self,
        model: onnx.ModelProto,
        target: str,
        x: np.ndarray,
        mode: str = "saliency",
        form: str = "cpu",
        lrn: str = "exact",
    ) -> None:
        self.graph = ModelGraph.from_proto(model)
        self.x = x
        self.target = target
        self.inverse = build_inverse(self.graph, InverseSpec(target, x.shape, rule=mode, form=form, lrn=lrn))
        shapes = self.graph.shapes(x.shape)
        outputs = [target, *(t for t in self.inverse.forward_tensors if t != target)]
        self.forward = forward_model(self.graph, outputs, self.inverse.switches, shapes, self.inverse.masks)
        self._forward_session = session(self.forward)
        self._inverse_session = session(self.inverse.model)
        self.outputs = outputs
        self.values = self.run_forward(x)

    def run_forward(self, x: np.ndarray) -> dict[str, np.ndarray]:
        values = self._forward_session.run(None, {self.graph.input_name: x.astype(np.float32)})
        return dict(zip(self.outputs, values, strict=True))

    def jvp(self, u: np.ndarray, eps: float = 1e-3) -> np.ndarray:
        plus = self.run_forward(self.x + eps * u)[self.target].astype(np.float64)
        minus = self.run_forward(self.x - eps * u)[self.target].astype(np.float64)
        return (plus - minus) / (2 * eps)

    def vjp(self, seeds: np.ndarray) -> np.ndarray:
        """Jᵀ·v for each seed: in one batched run, or one run per seed where the inverse takes one."""
        if self.inverse.single:
            return np.concatenate([self.vjp_once(seed[None]) for seed in seeds], axis=0)
        return self.vjp_once(seeds)

    def vjp_once(self, seeds: np.ndarray) -> np.ndarray:
        feeds = {"seed": seeds.astype(np.float32)}
        feeds.update({t: self.values[t] for t in self.inverse.forward_tensors})
        return self._inverse_session.run(None, feeds)[0]


def adjoint_gaps(lin: Linearisation, rng: np.random.Generator, k: int = 3, eps: float = 1e-3) -> list[float]:
    """Relative gaps |⟨J·u, v⟩ − ⟨u, Jᵀ·v⟩| / scale for K seeds projected in one batched run."""
    target_shape = lin.values[lin.target].shape
    u = rng.standard_normal(lin.x.shape)
    seeds = rng.standard_normal((k, *target_shape[1:]))
    ju = lin.jvp(u, eps)[0]
    jtv = lin.vjp(seeds).astype(np.float64)
    assert jtv.shape == (k, *lin.x.shape[1:]), jtv.shape
    gaps = []
    for i in range(k):
        left = float(np.sum(ju * seeds[i]))
        right = float(np.sum(u[0] * jtv[i]))
        scale = float(np.sqrt(np.sum(ju**2) * np.sum(seeds[i] ** 2))) + 1e-6
        gaps.append(abs(left - right) / scale)
    return gaps


def load_fixture(name: str) -> onnx.ModelProto:
    return onnx.load(str(FIXTURES / name))


class CutAt:
    """The rest of a network from a layer on: ``target`` as a function of ``source``'s value, run
    by a plain onnxruntime session on the model cut there (``onnx.utils.Extractor``). The graph
    input stays an input too, for the branches that reach the target without passing the source
    (a residual's skip); it is fed the image the source's value came from."""

    def __init__(self, model: onnx.ModelProto, input_name: str, source: str, target: str) -> None:
        self.input_name, self.source = input_name, source
        extractor = onnx.utils.Extractor(onnx.shape_inference.infer_shapes(model))  # it cuts at declared tensors
        self._session = session(extractor.extract_model([input_name, source], [target]))

    def __call__(self, x: np.ndarray, activation: np.ndarray) -> np.ndarray:
        feeds = {self.input_name: x.astype(np.float32), self.source: activation.astype(np.float32)}
        return self._session.run(None, feeds)[0]

    def directional_derivative(self, x: np.ndarray, activation: np.ndarray, u: np.ndarray, eps: float) -> np.ndarray:
        """J·u by central differences at the layer: (f(a + εu) − f(a − εu)) / 2ε."""
        plus = self(x, activation + eps * u).astype(np.float64)
        minus = self(x, activation - eps * u).astype(np.float64)
        return (plus - minus) / (2 * eps)


def torch_saliency_gaps(
    ours: np.ndarray, ref: dict[str, np.ndarray], floor: float = 1e-4
) -> tuple[float, float, float]:
    """(max|Δ|, its bound, cosine) between a saliency and the stored torch autograd one (``ref``:
    ``gradient`` and torch's own float32-vs-float64 ``gap``): the bound is twice that gap, or
    ``floor`` of max|ref|, whichever is larger."""
    theirs = ref["gradient"][0].astype(np.float64)
    ours = ours.astype(np.float64)
    delta = float(np.max(np.abs(ours - theirs)))
    bound = max(2 * float(ref["gap"]), floor * float(np.max(np.abs(theirs))))
    cosine = float(np.sum(ours * theirs) / (np.linalg.norm(ours) * np.linalg.norm(theirs)))
    return delta, bound, cosine
