"""Audio as sequences: generated sound clips, turned into log-magnitude spectrograms with
``torch.stft`` (no torchaudio, no download).

Four classes of half-second clips, each from a random base pitch with noise: a ``steady`` tone,
a ``rising`` and a ``falling`` glide, and a ``pulsed`` tone. Rising and falling clips hold the
same frequencies, in opposite order, so a net must read how the sound changes over time.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from trainlab.data.base import InMemoryDataModule, Loaded
from trainlab.data.splits import check_int
from trainlab.errors import ConfigError

CLASSES = ["steady", "rising", "falling", "pulsed"]
LAYOUTS = ("sequence", "image", "wave")


def tones(
    samples: int, sample_rate: int, duration: float, noise: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(samples, sample_rate * duration)`` waveforms and their class indices."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(sample_rate * duration)) / sample_rate
    labels = np.arange(samples) % len(CLASSES)
    rng.shuffle(labels)
    waves = np.empty((samples, len(t)), dtype=np.float32)
    nyquist = sample_rate / 2
    for i, label in enumerate(labels):
        base = rng.uniform(0.1, 0.25) * nyquist
        span = rng.uniform(0.3, 0.6) * base
        kind = CLASSES[label]
        if kind == "rising":
            freq = base + span * t / duration
        elif kind == "falling":
            freq = base + span * (1 - t / duration)
        else:
            freq = np.full_like(t, base + span / 2)
        phase = 2 * np.pi * np.cumsum(freq) / sample_rate
        wave = np.sin(phase + rng.uniform(0, 2 * np.pi))
        if kind == "pulsed":
            wave *= (np.sin(2 * np.pi * rng.uniform(6, 10) * t) > 0).astype(float)
        waves[i] = wave + noise * rng.normal(size=len(t))
    return waves, labels


def spectrogram(waves: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """``(N, frames, n_fft // 2 + 1)`` log-magnitude spectrograms (Hann window)."""
    stft = torch.stft(
        torch.from_numpy(waves),
        n_fft=n_fft,
        hop_length=hop,
        window=torch.hann_window(n_fft),
        return_complex=True,
    )  # (N, bins, frames)
    return torch.log1p(stft.abs()).transpose(1, 2).numpy()


class ToneDataModule(InMemoryDataModule):
    """Generated sound clips as spectrograms: ``layout=sequence`` gives ``(frames, bins)`` for
    RNNs and Transformers, ``layout=image`` gives ``(1, bins, frames)`` for CNNs and ViTs;
    ``layout=wave`` gives the raw waveform as a ``(samples, 1)`` sequence, for temporal
    convolutions (``net=tcn``).

    Args:
        samples: clips generated (as many of each class).
        sample_rate: samples per second.
        duration: seconds per clip.
        noise: standard deviation of the white noise added to each clip (the tone's is 0.7).
        n_fft, hop: window and stride of the short-time Fourier transform, in samples.
        layout: ``sequence``, ``image`` or ``wave``.
        seed: seed of the generator (the data, not the training).
        **kwargs: split, batch and normalisation settings of :class:`InMemoryDataModule`.
    """

    def __init__(
        self,
        samples: int = 2000,
        sample_rate: int = 4000,
        duration: float = 0.5,
        noise: float = 1.0,
        n_fft: int = 128,
        hop: int = 64,
        layout: str = "sequence",
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if layout not in LAYOUTS:
            raise ConfigError(f"data.layout {layout!r} is unknown; use one of {LAYOUTS}")
        if int(sample_rate * duration) < n_fft:
            raise ConfigError(
                f"a clip of {duration} s at {sample_rate} Hz is shorter than data.n_fft={n_fft}"
            )
        check_int("samples", samples, 8)
        self.samples, self.sample_rate, self.duration = samples, sample_rate, duration
        self.noise, self.n_fft, self.hop, self.layout, self.seed = noise, n_fft, hop, layout, seed

    def load(self) -> Loaded:
        waves, labels = tones(self.samples, self.sample_rate, self.duration, self.noise, self.seed)
        if self.layout == "wave":
            spec = waves[:, :, None]  # (N, samples, 1)
        else:
            spec = spectrogram(waves, self.n_fft, self.hop)  # (N, frames, bins)
        if self.layout == "image":
            spec = spec.transpose(0, 2, 1)[:, None]  # (N, 1, bins, frames): low pitch at row 0
        return Loaded(
            x=spec.astype(np.float32),
            y=labels.astype(np.int64),
            task="classification",
            modality="sequence" if self.layout == "wave" else self.layout,
            class_names=list(CLASSES),
            info={"sample_rate": self.sample_rate, "n_fft": self.n_fft, "hop": self.hop},
        )
