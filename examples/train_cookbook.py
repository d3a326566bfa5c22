"""The cookbook's training recipe, end to end, on real data that needs no download.

scikit-learn's bundled handwritten digits (1,797 8x8 images) are upscaled to 32x32 uint8 and
split into train/val/test with a fixed seed. Each step crops, resizes and normalizes the uint8
batch in one op (``cookbook_ops.nn.RandomResizedCropNormalize``: RandomResizedCrop + ToTensor +
Normalize; evaluation uses ``ResizeCenterCropNormalize``), mixes it with
``cookbook_ops.nn.Mixup``, runs a small CNN
with a bilinear-pooling head and a mixup label-smoothed cross-entropy; AdamW with no weight
decay on biases and norm weights, an L1 penalty, gradient clipping and a warmup + cosine
schedule. Accuracy is counted on the device and read once per epoch. Every epoch writes a
checkpoint (``--resume`` continues it exactly), a JSON log, and TensorBoard scalars when
tensorboard is installed.

    python examples/train_cookbook.py                      # fused kernels
    python examples/train_cookbook.py --ops reference      # every op in plain PyTorch
    torchrun --nproc_per_node=2 examples/train_cookbook.py # DistributedDataParallel
    python examples/plot_curves.py runs/cookbook/log.json  # learning curves as a PNG

GroupNorm (per sample) rather than BatchNorm keeps DDP exact: the gradient averaged over
ranks equals the single-process gradient of the global batch.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import BatchSampler, DistributedSampler

import cookbook_ops
from cookbook_ops.recipe import checkpoint, metrics, optim, regularization, schedules

NUM_CLASSES = 10
IMAGE_SIZE = 32
SMOKE_BATCHES = 3


# --- data -----------------------------------------------------------------------------------


def load_digits_uint8(size: int = IMAGE_SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 digits as uint8 (N, size, size, 1) images (NHWC, as decoded images come) and
    int64 labels. The 0..16 grey levels are scaled to 0..255 and upscaled bilinearly."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.from_numpy(digits.images).float().unsqueeze(1) * (255.0 / 16.0)
    images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    images = images.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
    return images, torch.from_numpy(digits.target).long()


def split_indices(n: int, seed: int, val_frac: float = 0.15, test_frac: float = 0.15):
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val, n_test = round(n * val_frac), round(n * test_frac)
    return perm[n_val + n_test :], perm[:n_val], perm[n_val : n_val + n_test]


def channel_stats(images: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 NHWC images, in 0..1 units (what Normalize takes)."""
    x = images.double().div(255).flatten(0, 2)
    return x.mean(0).tolist(), x.std(0).tolist()


def batches(sampler, batch_size: int, drop_last: bool, limit: int | None = None):
    """Index batches; the data set is small enough to live on the device whole, so a batch
    is one gather instead of a DataLoader's per-sample collation."""
    for i, idx in enumerate(BatchSampler(sampler, batch_size, drop_last)):
        if limit is not None and i >= limit:
            return
        yield torch.as_tensor(idx, dtype=torch.long)


class Shard(torch.utils.data.Sampler):
    """Every world_size-th index from rank: evaluation sees each sample exactly once over all
    ranks (DistributedSampler would pad with repeats), so summed counts are exact."""

    def __init__(self, n: int, rank: int, world_size: int):
        self.indices = list(range(rank, n, world_size))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self):
        return len(self.indices)


# --- model ----------------------------------------------------------------------------------


class NormalizeImages(nn.Module):
    """uint8 (N, H, W, C) -> normalized float (N, C, H, W), ToTensor + Normalize in one op
    (no crop: the tests compare gradients on exactly these inputs)."""

    def __init__(self, mean, std):
        super().__init__()
        self.mean, self.std = list(mean), list(std)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return cookbook_ops.normalize_images(images, self.mean, self.std, layout="NHWC")


def conv_block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.GroupNorm(min(8, cout), cout),
        nn.ReLU(inplace=True),
    )


class DigitsNet(nn.Module):
    """A strided conv and two conv blocks to an 8x8 map of ``dim`` channels, bilinear
    pooling (dim^2 features, signed sqrt, L2 norm), dropout, a linear classifier. The pooled
    vector has unit norm (entries about 1/dim); scaling it by sqrt(dim) gives logits of a
    useful size early without making the classifier's steps too large."""

    def __init__(self, width: int = 16, dim: int = 32, dropout: float = 0.2):
        super().__init__()
        self.features = nn.Sequential(
            conv_block(1, width, stride=2),  # 32x32 -> 16x16
            conv_block(width, 2 * width),
            nn.MaxPool2d(2),  # -> 8x8
            conv_block(2 * width, dim),
        )
        self.pool = cookbook_ops.nn.BilinearPooling()
        self.scale = math.sqrt(dim)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(dim * dim, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.pool(self.features(x)) * self.scale
        return self.classifier(self.dropout(z))


# --- distributed helpers --------------------------------------------------------------------


def setup_distributed(device_arg: str) -> tuple[int, int, torch.device]:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device_arg == "auto":
        device_arg = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device_arg)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank, world_size, device


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    if dist.is_initialized() and dist.get_world_size() > 1:
        t = t.clone()
        dist.all_reduce(t)
    return t


def gather_rng_states(device: torch.device) -> list[dict]:
    """Every rank's torch generator states (rank 0 gets them all): each rank draws its own
    mixup and dropout streams, and a resume gives each its own back."""
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    if not (dist.is_initialized() and dist.get_world_size() > 1):
        return [state]
    states = [None] * dist.get_world_size()
    dist.all_gather_object(states, state)
    return states


# --- training -------------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--ops",
        choices=("fused", "reference"),
        default="fused",
        help="fused: cookbook_ops kernels; reference: every op in plain PyTorch",
    )
    p.add_argument("--epochs", type=int, default=None, help="default 15 (1 with --smoke)")
    p.add_argument("--batch-size", type=int, default=64, help="per process")
    p.add_argument("--lr", type=float, default=3e-3, help="AdamW peak learning rate")
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--l1", type=float, default=1e-6, help="L1 penalty coefficient")
    p.add_argument("--clip-grad", type=float, default=5.0, help="max gradient norm (0: off)")
    p.add_argument("--warmup-epochs", type=float, default=1.0)
    p.add_argument("--min-lr", type=float, default=1e-5)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--mixup-alpha", type=float, default=0.2, help="0: no mixup")
    p.add_argument(
        "--crop-scale",
        type=float,
        default=0.85,
        help="RandomResizedCrop's smallest area fraction (1: no random crop)",
    )
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--dim", type=int, default=32, help="channels into bilinear pooling")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda")
    p.add_argument("--amp", action="store_true", help="fp16 autocast + GradScaler (CUDA)")
    p.add_argument("--out", default="runs/cookbook", help="checkpoints, logs, TensorBoard")
    p.add_argument(
        "--resume",
        nargs="?",
        const="auto",
        default=None,
        metavar="CHECKPOINT",
        help="continue from CHECKPOINT (default: OUT/checkpoint.pth)",
    )
    p.add_argument(
        "--stop-after",
        type=int,
        default=None,
        metavar="EPOCHS",
        help="stop after this many epochs of this run (to test --resume)",
    )
    p.add_argument(
        "--smoke",
        action="store_true",
        help=f"{SMOKE_BATCHES} batches per epoch and evaluation (default 1 epoch), for tests",
    )
    p.add_argument("--no-tensorboard", action="store_true")
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="tqdm progress bars (default: when stderr is a terminal)",
    )
    p.add_argument("--plot", action="store_true", help="write OUT/curves.png at the end")
    args = p.parse_args(argv)
    if args.epochs is None:
        args.epochs = 1 if args.smoke else 15
    return args


def make_tensorboard(out: Path, enabled: bool):
    if not enabled:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is an optional extra
        return None
    return SummaryWriter(str(out / "tensorboard"))


def progress(iterable, total, enabled, desc):
    if not enabled:
        return iterable
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is optional
        return iterable
    return tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True)


@torch.no_grad()
def evaluate(model, transform, images, labels, indices, args, rank, world_size):
    """(loss, top-1 %, top-3 %) over ``indices``, summed across ranks."""
    model.eval()
    acc = metrics.Accuracy(topk=(1, 3))
    loss_sum = torch.zeros((), dtype=torch.float64, device=images.device)
    limit = SMOKE_BATCHES if args.smoke else None
    for idx in batches(Shard(len(indices), rank, world_size), 256, False, limit):
        sel = indices[idx.to(indices.device)]
        logits = model(transform(images[sel]))
        loss = cookbook_ops.label_smoothing_cross_entropy(
            logits.float(), labels[sel], args.label_smoothing, reduction="sum"
        )
        loss_sum += loss
        acc.update(logits, labels[sel])
    top1, top3 = acc.compute()
    _, count = acc.counts()
    loss_total = all_reduce_sum(loss_sum).item()
    return loss_total / max(count, 1), top1, top3


def train(args: argparse.Namespace) -> dict:
    start = time.perf_counter()
    rank, world_size, device = setup_distributed(args.device)
    main_rank = rank == 0
    out = Path(args.out)
    if main_rank:
        out.mkdir(parents=True, exist_ok=True)
    show_progress = main_rank and (sys.stderr.isatty() if args.progress is None else args.progress)

    images, labels = load_digits_uint8()
    train_idx, val_idx, test_idx = split_indices(len(labels), args.seed)
    mean, std = channel_stats(images[train_idx])
    images, labels = images.to(device), labels.to(device)
    train_idx, val_idx, test_idx = (i.to(device) for i in (train_idx, val_idx, test_idx))

    torch.manual_seed(args.seed)  # identical initial weights on every rank
    model = DigitsNet(args.width, args.dim, args.dropout).to(device)
    # The cookbook's train and val transforms on the uint8 batch, each one op on the device:
    # RandomResizedCrop (no flip: digits are not mirror-symmetric) + ToTensor + Normalize, and
    # Resize + CenterCrop + ToTensor + Normalize (the whole 32x32 image here).
    train_transform = cookbook_ops.nn.RandomResizedCropNormalize(
        IMAGE_SIZE, scale=(args.crop_scale, 1.0), flip_prob=0.0, mean=mean, std=std
    )
    val_transform = cookbook_ops.nn.ResizeCenterCropNormalize(
        IMAGE_SIZE, IMAGE_SIZE, mean=mean, std=std
    )
    torch.manual_seed(args.seed + 1000 * rank)  # each rank its own mixup and dropout draws
    ddp_model = DistributedDataParallel(model) if world_size > 1 else model

    mixup = (
        cookbook_ops.nn.Mixup(
            mixup_alpha=args.mixup_alpha,
            label_smoothing=args.label_smoothing,
            num_classes=NUM_CLASSES,
        )
        if args.mixup_alpha > 0
        else None
    )
    criterion = cookbook_ops.nn.MixupCrossEntropy(label_smoothing=args.label_smoothing)

    # AdamW's decay is decoupled from the gradient; biases and GroupNorm weights get none.
    optimizer = torch.optim.AdamW(
        optim.param_groups_no_bias_decay(model, args.weight_decay), lr=args.lr
    )
    sampler = DistributedSampler(
        range(len(train_idx)),
        num_replicas=world_size,
        rank=rank,
        shuffle=True,
        seed=args.seed,
        drop_last=True,
    )
    steps_per_epoch = len(sampler) // args.batch_size
    if args.smoke:
        steps_per_epoch = min(steps_per_epoch, SMOKE_BATCHES)
    total_steps = steps_per_epoch * args.epochs
    warmup = min(round(args.warmup_epochs * steps_per_epoch), total_steps)
    scheduler = schedules.warmup_cosine(optimizer, warmup, total_steps, min_lr=args.min_lr)
    use_amp = args.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda") if use_amp else None

    ckpt_path = out / "checkpoint.pth"
    start_epoch, best_acc, history = 0, None, []
    if args.resume is not None:
        resume_path = ckpt_path if args.resume == "auto" else Path(args.resume)
        meta = checkpoint.load(
            resume_path, model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler
        )
        start_epoch, best_acc = meta["epoch"], meta["best_metric"]
        history = list(meta["extra"].get("history", []))
        rank_rng = meta["extra"].get("rank_rng", [])
        if len(rank_rng) == world_size:
            torch.set_rng_state(rank_rng[rank]["cpu"])
            if "cuda" in rank_rng[rank] and device.type == "cuda":
                torch.cuda.set_rng_state(rank_rng[rank]["cuda"], device)
        if main_rank:
            print(f"resumed from {resume_path} at epoch {start_epoch}", flush=True)

    writer = make_tensorboard(out, main_rank and not args.no_tensorboard)
    end_epoch = args.epochs
    if args.stop_after is not None:
        end_epoch = min(end_epoch, start_epoch + args.stop_after)

    for epoch in range(start_epoch, end_epoch):
        epoch_start = time.perf_counter()
        ddp_model.train()
        sampler.set_epoch(epoch)
        train_acc = metrics.Accuracy()
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        lr = optimizer.param_groups[0]["lr"]
        steps = batches(sampler, args.batch_size, True, steps_per_epoch)
        for idx in progress(steps, steps_per_epoch, show_progress, f"epoch {epoch + 1}"):
            sel = train_idx[idx.to(device)]
            x, y = train_transform(images[sel]), labels[sel]
            target = y
            if mixup is not None:
                x, target = mixup(x, y)
            with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                logits = ddp_model(x)
            loss = criterion(logits.float(), target)
            if args.l1 > 0:
                loss = loss + args.l1 * regularization.l1_penalty(model.parameters())
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
            else:
                loss.backward()
            if args.clip_grad > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip_grad)
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            scheduler.step()
            loss_sum += loss.detach() * y.shape[0]
            # Under mixup, a sample's label is the one it holds the larger share of.
            if mixup is not None:
                y = torch.where(target.lam >= 0.5, target.target_a, target.target_b)
            train_acc.update(logits.detach(), y)

        (train_top1,) = train_acc.compute()
        _, train_count = train_acc.counts()
        train_loss = all_reduce_sum(loss_sum).item() / max(train_count, 1)
        val_loss, val_top1, _ = evaluate(
            model, val_transform, images, labels, val_idx, args, rank, world_size
        )
        is_best = best_acc is None or val_top1 > best_acc
        best_acc = val_top1 if is_best else best_acc
        record = {
            "epoch": epoch + 1,
            "train_loss": train_loss,
            "train_acc": train_top1,
            "val_loss": val_loss,
            "val_acc": val_top1,
            "lr": lr,
            "seconds": time.perf_counter() - epoch_start,
        }
        history.append(record)
        rng_states = gather_rng_states(device)
        if main_rank:
            checkpoint.save(
                ckpt_path,
                model=model,
                optimizer=optimizer,
                scheduler=scheduler,
                scaler=scaler,
                epoch=epoch + 1,
                best_metric=best_acc,
                is_best=is_best,
                extra={"history": history, "rank_rng": rng_states, "args": vars(args)},
            )
            write_log(out / "log.json", args, history)
            if writer is not None:
                for key, tag in (
                    ("train_loss", "Loss/train"),
                    ("val_loss", "Loss/val"),
                    ("train_acc", "Accuracy/train"),
                    ("val_acc", "Accuracy/val"),
                    ("lr", "LearningRate"),
                ):
                    writer.add_scalar(tag, record[key], epoch + 1)
            print(
                f"epoch {epoch + 1:3d}/{args.epochs}  train loss {train_loss:.4f} "
                f"acc {train_top1:6.2f}%  val loss {val_loss:.4f} acc {val_top1:6.2f}%  "
                f"lr {lr:.5f}  {record['seconds']:.1f}s",
                flush=True,
            )

    test_loss, test_top1, test_top3 = evaluate(
        model, val_transform, images, labels, test_idx, args, rank, world_size
    )
    wall = time.perf_counter() - start
    summary = {
        "ops": args.ops,
        "world_size": world_size,
        "epochs_completed": history[-1]["epoch"] if history else start_epoch,
        "test_loss": test_loss,
        "test_acc": test_top1,
        "test_top3": test_top3,
        "best_val_acc": best_acc,
        "wall_seconds": wall,
    }
    if main_rank:
        write_log(out / "log.json", args, history, summary)
        if writer is not None:
            writer.add_scalar("Accuracy/test", test_top1, summary["epochs_completed"])
            writer.close()
        print(
            f"test accuracy {test_top1:.2f}% (top-3 {test_top3:.2f}%)  ops {args.ops}  "
            f"processes {world_size}  epochs {summary['epochs_completed']}  "
            f"wall time {wall:.1f}s",
            flush=True,
        )
        if args.plot:
            sys.path.insert(0, str(Path(__file__).resolve().parent))
            from plot_curves import plot

            plot(out / "log.json", out / "curves.png")
    summary["model"] = model
    return summary


def write_log(path: Path, args, history, summary=None) -> None:
    data = {"args": vars(args), "epochs": history}
    if summary is not None:
        data["summary"] = {k: v for k, v in summary.items() if k != "model"}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def main(argv=None) -> dict:
    args = parse_args(argv)
    backend = "reference" if args.ops == "reference" else "auto"
    try:
        with cookbook_ops.use_backend(backend):
            return train(args)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    main()
