"""Size and speed of the default AttentionCNN: parameters, FLOPs, clips per second.

Usage (from the repository root, after ``make install``)::

    .venv/bin/python benchmarks/model.py [--n-classes 23] [--repeats 3]

Counts forward FLOPs with ``torch.utils.flop_counter`` on one 5-s spectrogram (128 mel
bands x 313 frames), then times eager inference at batch 1 and 32 and training steps
(forward, backward, AdamW) at batch 32 on random spectrograms. The printed table is what
docs/benchmarks.md records.
"""

from __future__ import annotations

import argparse
import os
import platform

import torch
from _measure import best_seconds
from torch.utils.flop_counter import FlopCounterMode

from sklearn_birdaudio import AttentionCNN

N_MELS, N_FRAMES = 128, 313  # a 5-s clip at 32 kHz with hop 512


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-classes", type=int, default=23)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    torch.manual_seed(0)
    network = AttentionCNN(n_classes=args.n_classes).eval()
    n_parameters = sum(parameter.numel() for parameter in network.parameters())
    clip = torch.randn(1, 1, N_MELS, N_FRAMES) * 15 - 50
    with FlopCounterMode(display=False) as counter:  # needs autograd on (module tracker)
        network(clip)
    flops = counter.get_total_flops()

    rows = []
    for batch_size in (1, 32):
        batch = torch.randn(batch_size, 1, N_MELS, N_FRAMES) * 15 - 50

        def infer(batch=batch):
            with torch.inference_mode():
                network(batch)

        seconds = best_seconds(infer, args.repeats)
        rows.append((f"inference, batch {batch_size}", batch_size / seconds, flops))

    network.train()
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-3, weight_decay=1e-5)
    batch = torch.randn(32, 1, N_MELS, N_FRAMES) * 15 - 50
    targets = torch.randint(0, 2, (32, args.n_classes)).float()
    loss_function = torch.nn.BCEWithLogitsLoss()

    def train_step():
        optimizer.zero_grad()
        loss_function(network(batch), targets).backward()
        optimizer.step()

    seconds = best_seconds(train_step, args.repeats)
    # A training step costs about three forward passes (the backward pass is two).
    rows.append(("training step, batch 32", 32 / seconds, 3 * flops))

    print(
        f"# AttentionCNN, default size ({platform.machine()}, {os.cpu_count()} cores, torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads)"
    )
    print()
    print(f"{n_parameters / 1e6:.2f} M parameters; {flops / 1e9:.2f} GFLOPs forward per 5-s clip.")
    print()
    print("| measure | 5-s clips/s | achieved GFLOP/s |")
    print("|---|---|---|")
    for name, clips_per_second, flops_per_clip in rows:
        gflops_per_second = clips_per_second * flops_per_clip / 1e9
        print(f"| {name} | {clips_per_second:.1f} | {gflops_per_second:.0f} |")


if __name__ == "__main__":
    main()
