"""Speed in one table: features vs librosa, the network vs the CPU's matmul peak, detection
vs BirdNET, all measured in the same run.

Usage (from the repository root, after ``make install``)::

    .venv/bin/python benchmarks/speed.py [--soundscapes N] [--docs docs/benchmarks.md]

Rows (every ratio is taken within this run, since these machines are noisy):

- log-mel of 5-s clips at 32 kHz in memory: librosa one clip at a time (its documented
  usage) against ``MelSpectrogramTransformer`` in batches of 64, float64 and float32 FFT;
- ``torch.matmul`` of two 2048 x 2048 float32 matrices: the CPU's practical peak;
- the default AttentionCNN (5.14 GFLOPs per 5-s clip) and the small-data recipe's
  (16 filters, stem stride 2) at inference, batch 1 and 64, on each inference path of
  ``AttentionCNNClassifier(inference=...)``: ``eager`` (the trained module), ``fused``
  (batch norms folded into the convolutions, channels-last weights; the default) and
  ``compiled`` (the fused copy through ``torch.compile`` with inductor's freezing), as
  clips/s, milliseconds per clip, GFLOP/s (torch's FLOP counter) and share of the matmul
  peak; and a training step at batch 32 (about three forward passes);
- end-to-end ``detect()``, with either network, on the soundscapes of
  ``../shared/data/soundscapes`` (MP3 decoding, resampling, log-mel, network, table) in
  seconds of audio per wall second: the eager and the fused network one file at a time
  (``n_jobs=1``), the recipe's also with the read-ahead thread forced on and with one file per
  core (``n_jobs=-1``);
- the distilled student (``--distilled``, a model saved by ``distill.py --save``) the same
  way: ``detect()`` one file at a time and one file per core;
- BirdNET v2.4 on the same files and cores, as BirdNET-Analyzer runs it (the same
  ``.tflite`` model with LiteRT on 3-s windows at 48 kHz, decoding and resampling
  included), through :class:`~sklearn_birdaudio.BirdNETClassifier`, on 1 and 2 threads;
  and the BirdNET pipelines of ``embeddings.py`` (embeddings + logistic regression, and
  its ensemble with the zero-shot scores, the distillation teacher) on 2 threads, without
  a cache, fitted on the train split.

``--json`` writes the real-time factors the Pareto figure (``pareto.py``) reads.

On a machine with CUDA the features, the network and ``detect()`` are measured there too.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from _measure import best_seconds, publish
from detection import DATA, default_model
from log_mel import librosa_log_mel

from sklearn_birdaudio import (
    AttentionCNN,
    BirdNETClassifier,
    MelSpectrogramTransformer,
    audio_info,
    detect,
    load_manifest,
    load_model,
    make_small_data_pipeline,
)
from sklearn_birdaudio.inference import inference_module
from sklearn_birdaudio.recipes import small_data_recipe

INFERENCE_PATHS = ("eager", "fused", "compiled")

N_MELS, N_FRAMES, N_CLASSES = 128, 313, 23
NETWORKS = {  # AttentionCNN parameters
    "default network": {},
    "small-data recipe network": {
        key.removeprefix("module__"): value
        for key, value in small_data_recipe().items()
        if key.startswith("module__")
    },
}


def flops_per_clip(network: torch.nn.Module) -> float:
    """Floating-point operations of one 5-s clip through the network (torch's counter)."""
    from torch.utils.flop_counter import FlopCounterMode

    device = next(network.parameters()).device
    clip = torch.randn(1, 1, N_MELS, N_FRAMES, device=device) * 15 - 50
    with FlopCounterMode(display=False) as counter:  # needs autograd on (module tracker)
        network.eval()(clip)
    return float(counter.get_total_flops())


def recipe_model():
    """The small-data recipe's pipeline, fitted briefly (speed does not depend on weights)."""
    X, Y, _ = load_manifest(DATA / "xc-puerto-rico" / "labels.csv", split="train")
    pipeline = make_small_data_pipeline(verbose=0, max_epochs=1, crops_per_recording=1)
    return pipeline.fit(X[:8], Y[:8])


def matmul_peak(device: str, size: int = 2048) -> float:
    """GFLOP/s of a large float32 matrix product (the practical peak of the device)."""
    a, b = (torch.randn(size, size, device=device) for _ in range(2))

    def product():
        a @ b
        if device == "cuda":
            torch.cuda.synchronize()

    return 2 * size**3 / best_seconds(product, repeats=5) / 1e9


def network_rates(device: str, network: torch.nn.Module) -> dict[str, float]:
    """Clips/s of a network: inference at batch 1 and 64 on each path, a training step."""
    network = network.to(device).eval()
    rates = {}
    for path in INFERENCE_PATHS:
        runnable = inference_module(network.eval(), path)
        for batch_size in (1, 64):
            batch = torch.randn(batch_size, 1, N_MELS, N_FRAMES, device=device) * 15 - 50

            def infer(batch=batch, runnable=runnable):
                with torch.inference_mode():
                    runnable(batch)
                if device == "cuda":
                    torch.cuda.synchronize()

            seconds = best_seconds(infer, repeats=3)  # the warm-up call compiles
            rates[f"inference ({path}), batch {batch_size}"] = batch_size / seconds
    network.train()
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-3)
    batch = torch.randn(32, 1, N_MELS, N_FRAMES, device=device) * 15 - 50
    targets = torch.randint(0, 2, (32, N_CLASSES), device=device).float()
    loss = torch.nn.BCEWithLogitsLoss()

    def step():
        optimizer.zero_grad()
        loss(network(batch), targets).backward()
        optimizer.step()
        if device == "cuda":
            torch.cuda.synchronize()

    rates["training step, batch 32"] = 32 / best_seconds(step, repeats=3)
    return rates


def feature_rates(device: str, clips: np.ndarray) -> dict[str, float]:
    rates = {}
    for precision in ("float64", "float32"):
        transformer = MelSpectrogramTransformer(
            batch_size=64, fft_precision=precision, device=device
        )
        transformer.fit_transform(clips[:64])
        seconds = best_seconds(lambda t=transformer: t.fit_transform(clips), repeats=3)
        rates[f"MelSpectrogramTransformer, {precision} FFT"] = len(clips) / seconds
    return rates


def cpu_model() -> str:
    """The CPU's model name (``platform.processor()`` is empty on most Linux machines)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def birdnet_pipeline_rates(files: list[str], audio: float, cache: Path) -> dict[str, float]:
    """Seconds of audio per wall second of the BirdNET pipelines, fitted on the train split
    (embeddings cached there), predicting without a cache as a user's new files would."""
    from sklearn_birdaudio.distillation import birdnet_teacher

    X, Y, _ = load_manifest(DATA / "xc-puerto-rico" / "labels.csv", split="train", as_frame=True)
    ensemble = birdnet_teacher(memory=cache).fit(list(X), Y)
    embeddings, zero_shot = ensemble.estimators_  # the fitted members
    embeddings.set_params(birdnet__memory=None)
    zero_shot.set_params(memory=None)
    rates = {}
    for name, model in (("BirdNET embeddings + logistic regression", embeddings),
                        ("BirdNET ensemble (embeddings + LR, zero-shot)", ensemble)):  # fmt: skip
        model.predict_proba(files[:1])
        rates[name] = audio / timed(lambda m=model: m.predict_proba(files))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--soundscapes", type=int, default=7, help="how many to detect on")
    parser.add_argument("--docs", type=Path, help="Markdown file with speed markers")
    parser.add_argument(
        "--distilled", type=Path, default=Path("outputs/distill/student.safetensors"),
        help="a distilled student saved by distill.py --save (skipped when missing)",
    )  # fmt: skip
    parser.add_argument("--cache", type=Path, default=Path("outputs/cache/birdnet"))
    parser.add_argument("--json", type=Path, help="write the real-time factors here")
    args = parser.parse_args()
    devices = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
    lines = []

    def add(*cells) -> None:
        lines.append("| " + " | ".join(str(cell) for cell in cells) + " |")
        print(lines[-1], flush=True)

    clips = (0.1 * np.random.default_rng(0).standard_normal((256, 160000))).astype(np.float32)
    librosa_log_mel(clips[0])
    librosa_rate = 64 / best_seconds(lambda: [librosa_log_mel(c) for c in clips[:64]])
    add("log-mel, librosa one clip at a time", "cpu", f"{librosa_rate:.0f} clips/s", "1.00x")
    for device in devices:
        for name, rate in feature_rates(device, clips).items():
            add(f"log-mel, {name}", device, f"{rate:.0f} clips/s", f"{rate / librosa_rate:.2f}x")

    for device in devices:
        peak = matmul_peak(device)
        add("torch.matmul 2048 x 2048 (float32 peak)", device, f"{peak:.0f} GFLOP/s", "1.00x")
        for network_name, params in NETWORKS.items():
            torch.manual_seed(0)
            network = AttentionCNN(n_classes=N_CLASSES, **params)
            flops = flops_per_clip(network)
            rates = network_rates(device, network)
            for name, rate in rates.items():
                achieved = rate * flops * (3 if name.startswith("training") else 1) / 1e9
                add(
                    f"AttentionCNN, {network_name} ({flops / 1e9:.2f} GFLOP/clip), {name}",
                    device,
                    f"{rate:.1f} clips/s ({1000 / rate:.1f} ms/clip), {achieved:.0f} GFLOP/s",
                    f"{achieved / peak:.0%} of peak",
                )
            for batch_size in (1, 64):
                eager = rates[f"inference (eager), batch {batch_size}"]
                add(
                    f"AttentionCNN, {network_name}, batch {batch_size}: speed-up over eager",
                    device,
                    ", ".join(
                        f"{path} {rates[f'inference ({path}), batch {batch_size}'] / eager:.2f}x"
                        for path in INFERENCE_PATHS[1:]
                    ),
                    "",
                )

    files = [str(path) for path in sorted((DATA / "soundscapes" / "audio").glob("*.mp3"))]
    files = files[: args.soundscapes]
    audio = sum(audio_info(path).duration_seconds for path in files)
    models = {"default network": default_model(), "small-data recipe network": recipe_model()}
    if args.distilled.is_file():
        models["distilled student"] = load_model(args.distilled)
    per_core = [name for name in models if name != "default network"]
    ours = {}  # (network, device) -> the fastest detect() with that network
    one_file = {}  # (network, inference path, device) -> detect() with n_jobs=1

    def measure_detect(label, model, device, **options) -> float:
        detect(model, files[:1], verbose=0, **options)
        rate = audio / timed(lambda: detect(model, files, verbose=0, **options))
        add(f"detect(), {len(files)} soundscapes ({audio / 60:.0f} min), {label}", device,
            f"{rate:.0f}x real time", "")  # fmt: skip
        return rate

    for device in devices:
        for network_name, model in models.items():
            model.set_params(mel__device=device, cnn__device=device)
            for path in ("eager", "fused"):
                model.set_params(cnn__inference=path)
                one_file[network_name, path, device] = measure_detect(
                    f"{network_name}, {path}, n_jobs=1", model, device
                )
            fused, eager = (one_file[network_name, path, device] for path in ("fused", "eager"))
            add(f"detect(), {network_name}: fused over eager", device,
                f"{fused / eager:.2f}x", "")  # fmt: skip
            ours[network_name, device] = max(fused, eager)
        model = models["small-data recipe network"]
        # What the read-ahead thread is worth here (by default it runs only when torch
        # leaves a core free), and one file per core.
        ahead = measure_detect(
            "small-data recipe network, fused, read-ahead forced", model, device, read_ahead=True
        )
        plain = one_file["small-data recipe network", "fused", device]
        add("detect(), read-ahead thread forced on", device, f"{ahead / plain:.2f}x", "")
        for network_name in per_core if device == "cpu" else []:
            every_core = measure_detect(
                f"{network_name}, fused, n_jobs=-1 (a file per core)",
                models[network_name].set_params(cnn__inference="fused"), device, n_jobs=-1,
            )  # fmt: skip
            ours[network_name, device] = max(every_core, ours[network_name, device])
    labels = ["Turdus migratorius"]  # any class: BirdNET scores all 6,522 species anyway
    birdnet = {}
    for threads in (1, 2):
        zero_shot = BirdNETClassifier(n_threads=threads).fit(files[:1], labels)
        zero_shot.predict_proba(files[:1])
        seconds = timed(lambda z=zero_shot: z.predict_proba(files))
        birdnet[threads] = audio / seconds
        add(
            f"BirdNET v2.4 (LiteRT, {threads} thread{'s' if threads > 1 else ''}), same files",
            "cpu",
            f"{birdnet[threads]:.0f}x real time",
            "fastest detect() is "
            + ", ".join(
                f"{ours[name, 'cpu'] / birdnet[threads]:.1f}x faster ({name})" for name in models
            ),
        )

    pipelines = birdnet_pipeline_rates(files, audio, args.cache)
    for name, rate in pipelines.items():
        add(f"{name} (LiteRT, 2 threads), same files, no cache", "cpu", f"{rate:.0f}x real time",
            f"distilled student {ours['distilled student', 'cpu'] / rate:.1f}x faster"
            if ("distilled student", "cpu") in ours else "")  # fmt: skip
    if args.json:
        factors = {f"detect(), {name}": rate for (name, device), rate in ours.items()
                   if device == "cpu"}  # fmt: skip
        factors.update({f"BirdNET zero-shot, {n} thread(s)": rate for n, rate in birdnet.items()})
        factors.update(pipelines)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(factors, indent=2))

    header = [
        f"{cpu_model()} ({platform.machine()}), {os.cpu_count()} cores, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, torch "
        f"{torch.__version__} with {torch.get_num_threads()} threads"
        + (f", GPU {torch.cuda.get_device_name()}" if "cuda" in devices else ", no GPU")
        + f", {time.strftime('%Y-%m-%d')}.",
        "",
        "| measure | device | speed | ratio |",
        "|---|---|---|---|",
    ]
    text = "\n".join(header + lines) + "\n"
    print()
    publish(text, args.docs, "speed")


if __name__ == "__main__":
    main()
