"""Triton index arithmetic for sizes near 2**31, without allocating them.

The kernels compute in int32 sizes that the launchers allow up to 2**31 - 1. tl.cdiv(x, d) is
(x + d - 1) // d, which wraps negative for x within d of 2**31 and sends programs outside the
tensors. The index helpers are run here for one program at a time (the probe kernels below),
on the GPU or under the interpreter, which wraps int32 the same way.
"""

import pytest
import torch

triton = pytest.importorskip("triton")
tl = pytest.importorskip("triton.language")

from cookbook_ops.triton import cross_entropy as lsce  # noqa: E402
from cookbook_ops.triton import mixup, normalize_images  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


@triton.jit
def _mixup_tile_probe(
    rows_ptr,
    row_mask_ptr,
    cols_ptr,
    col_mask_ptr,
    pid,
    n_samples,
    S,
    ALIGN: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_S: tl.constexpr,
):
    rows, row_mask, cols, col_mask, _ = mixup._program_tile(
        pid, n_samples, S, ALIGN, BLOCK_N, BLOCK_S
    )
    tl.store(rows_ptr + tl.arange(0, BLOCK_N), rows)
    tl.store(row_mask_ptr + tl.arange(0, BLOCK_N), row_mask.to(tl.int8))
    tl.store(cols_ptr + tl.arange(0, BLOCK_S), cols)
    tl.store(col_mask_ptr + tl.arange(0, BLOCK_S), col_mask.to(tl.int8))


@triton.jit
def _normalize_run_probe(out_ptr, pid, length, BLOCK: tl.constexpr):
    group, start = normalize_images._run_block(pid, length, BLOCK)
    tl.store(out_ptr, group)
    tl.store(out_ptr + 1, start)


def _probe_pids(grid):
    return sorted({0, 1, grid // 2, grid - 2, grid - 1} & set(range(grid)))


@pytest.mark.parametrize(
    "S",
    [2**31 - 1, 2**31 - 2047, 2**31 - 4095, 2**31 - 4096, 2**31 - 2**20, 1000, 3 * 224 * 224],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_mixup_tiles_near_2_31_elements_per_sample(S, dtype):
    """Every program's rows and columns are the ones the launcher's grid assigns it, up to
    the largest sample the launchers accept (2**31 - 1 elements)."""
    n = 3
    params = mixup._launch_params(S, dtype)
    block_n, block_s = params["BLOCK_N"], params["BLOCK_S"]
    (grid,) = mixup._grid(n, S, params)
    chunks = -(-S // block_s)
    assert grid == -(-n // block_n) * chunks
    rows = torch.empty(block_n, dtype=torch.int64, device=DEVICE)
    row_mask = torch.empty(block_n, dtype=torch.int8, device=DEVICE)
    cols = torch.empty(block_s, dtype=torch.int32, device=DEVICE)
    col_mask = torch.empty(block_s, dtype=torch.int8, device=DEVICE)
    for pid in _probe_pids(grid):
        _mixup_tile_probe[(1,)](
            rows, row_mask, cols, col_mask, pid, n, S,
            ALIGN=params["ALIGN"], BLOCK_N=block_n, BLOCK_S=block_s,
        )  # fmt: skip
        group, chunk = divmod(pid, chunks)
        want_rows = group * block_n + torch.arange(block_n)
        want_cols = chunk * block_s + torch.arange(block_s)
        assert torch.equal(row_mask.cpu().bool(), want_rows < n), pid
        assert torch.equal(rows.cpu(), want_rows.clamp(max=n - 1)), pid
        assert torch.equal(cols.cpu().long(), want_cols), pid
        assert torch.equal(col_mask.cpu().bool(), want_cols < S), pid


@pytest.mark.parametrize(
    "length", [2**31 - 1, 2**31 - 1023, 2**31 - 2047, 2**31 - 2048, 2**31 - 2**20, 224, 672]
)
def test_normalize_images_runs_near_2_31_values(length):
    """Every program's run group and start position are the ones the launcher's grid assigns
    it, up to a run of 2**31 - 1 values (one row of a 1 x W x C image with W C < 2**31)."""
    runs = 3
    block, rows_per_program = normalize_images._block(length)
    blocks = -(-length // block)
    grid = -(-runs // rows_per_program) * blocks
    out = torch.empty(2, dtype=torch.int32, device=DEVICE)
    for pid in _probe_pids(grid):
        _normalize_run_probe[(1,)](out, pid, length, BLOCK=block)
        group, chunk = divmod(pid, blocks)
        assert out.cpu().tolist() == [group, chunk * block], pid


def _empty_logits(n_cols):
    # No rows: the class count is all that matters, and nothing is allocated.
    return torch.empty((0, n_cols), dtype=torch.float32, device=DEVICE)


def _no_targets():
    return torch.empty((0,), dtype=torch.int64, device=DEVICE)


def test_cross_entropy_refuses_rows_within_a_chunk_of_2_31():
    """The chunk loops step an int32 column 4096 at a time: a row longer than 2**31 - 4096
    would wrap the column past the last chunk (and 2**31 classes or more do not fit int32).
    Such rows are refused with an error that names the logits, before anything is launched."""
    assert lsce.MAX_CLASSES == 2**31 - 4096
    y = _no_targets()
    for n_cols in (lsce.MAX_CLASSES + 1, 2**31 - 1, 2**31, 2**32):
        logits = _empty_logits(n_cols)
        with pytest.raises(ValueError, match=r"logits has \d+ classes.*at most 2147479552"):
            lsce.label_smoothing_cross_entropy_forward(logits, y, None, 0.9, 0.0, -100)
        lse = torch.empty((0,), dtype=torch.float32, device=DEVICE)
        with pytest.raises(ValueError, match="logits has"):
            lsce.label_smoothing_cross_entropy_backward(lse, logits, y, None, lse, 0.9, 0.0, -100)
        with pytest.raises(ValueError, match="logits has"):
            lsce.mixup_cross_entropy_forward(logits, y, y, None, 0.9, 0.0, -100)
    loss, lse, correct = lsce.label_smoothing_cross_entropy_forward(
        _empty_logits(lsce.MAX_CLASSES), y, None, 0.9, 0.0, -100
    )
    assert loss.shape == lse.shape == correct.shape == (0,)


def _require_triton_gpu(op, min_memory_gib):
    import cookbook_ops

    if "triton" not in cookbook_ops.available_backends("cuda", op):
        pytest.skip("triton not available")
    if torch.cuda.get_device_properties(0).total_memory < min_memory_gib * 2**30:
        pytest.skip(f"needs {min_memory_gib} GiB of GPU memory")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_mixup_sample_of_2_31_minus_1_elements_on_gpu():
    """Two uint8 samples of 2**31 - 1 elements (4 GiB): every chunk of both is blended, the
    last ones included."""
    from cookbook_ops import _library

    _require_triton_gpu(_library.MIXUP_FORWARD, 16)
    S = 2**31 - 1
    x = torch.randint(0, 256, (2, S), dtype=torch.uint8, device="cuda")
    lam = torch.tensor([0.25, 0.75], device="cuda")
    index = torch.tensor([1, 0], device="cuda")
    out = _library.op_for(_library.MIXUP_FORWARD, "triton")(x, lam, index)
    cols = torch.tensor([0, 1, S // 2, S - 4097, S - 4096, S - 4095, S - 2, S - 1], device="cuda")
    a = x[:, cols].float()
    b = x[index[:, None], cols[None, :]].float()
    # Quarters of integers: exact in float32, rounded half to even as the kernel does.
    expected = (lam[:, None] * a + (1 - lam[:, None]) * b).round().to(torch.uint8)
    assert torch.equal(out[:, cols], expected)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("flip", [False, True], ids=["plain", "flip"])
def test_normalize_images_row_of_2_31_minus_1_values_on_gpu(flip):
    """A 1 x 1 x (2**31 - 1) image (2 GiB in, 8 GiB out): every block of the one run is
    written, the last ones included, with the values of the reference."""
    from cookbook_ops import _library
    from cookbook_ops.reference.normalize_images import normalize_images_forward

    _require_triton_gpu(_library.NORMALIZE_IMAGES, 24)
    W = 2**31 - 1
    images = torch.randint(0, 256, (1, 1, 1, W), dtype=torch.uint8, device="cuda")
    mean = torch.tensor([0.449], device="cuda")
    std = torch.tensor([0.226], device="cuda")
    mask = torch.tensor([flip], device="cuda")
    out = _library.op_for(_library.NORMALIZE_IMAGES, "triton")(
        images, mean, std, mask, None, None, False, torch.float32, False
    )
    w = torch.tensor([0, 1, W // 2, W - 2049, W - 2048, W - 2047, W - 2, W - 1], device="cuda")
    source = (W - 1 - w) if flip else w
    # The reference on the gathered source bytes, on the CPU: the same float32 roundings.
    picked = images[0, 0, 0, source].reshape(1, 1, 1, -1).cpu()
    expected = normalize_images_forward(
        picked, mean.cpu(), std.cpu(), None, None, None, False, torch.float32, False
    )
    assert torch.equal(out[0, 0, 0, w].cpu(), expected[0, 0, 0])
