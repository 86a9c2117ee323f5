"""Corrupted copies of test clips: how an embedding holds up under noise, filtering, codecs, rooms.

``mclx probe --corrupt noise:10db,lowpass:2000,aac:24k,mp3:64k,reverb:0.5`` fits the heads on
clean clips and scores them on corrupted copies of the test clips. A spec is a comma-separated
list of ``kind:level``:

- ``noise:<snr>db``: white Gaussian noise at that SNR relative to the clip's mean power.
- ``lowpass:<hz>`` (``2000``, ``2000hz``, ``2k``): a brick-wall low-pass in the frequency
  domain (every bin above the cutoff zeroed), so nothing above it survives.
- ``aac:<kbps>k``, ``mp3:<kbps>k``: an encode/decode round trip through FFmpeg's AAC encoder
  (MP4 container) or LAME (MP3) in PyAV, at that bit rate; a clip at a rate the encoder does
  not take is resampled to 44.1 kHz and back.
- ``reverb:<rt60 seconds>``: convolution with a synthetic room impulse response, white noise
  under an exponential envelope that falls 60 dB in RT60 seconds (as long as RT60), energy
  normalised; mixed with the dry clip at 0 dB direct-to-reverberant ratio and scaled by
  1/sqrt(2) so that the level stays about the same. The tail past the clip's end is cut.

Every corruption keeps the clip's length. The random ones (noise, reverb) are seeded per clip
from the corruption's canonical name and a key (the clip's path relative to the task), so the
same clip always gives the same bytes. A bad spec raises UsageError naming ``--corrupt``.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np

from mclx.errors import DecodeError, UsageError, one_line

FLAG = "--corrupt"
CODECS = {"aac": ("aac", "mp4"), "mp3": ("libmp3lame", "mp3")}  # kind -> (PyAV encoder, container)
# Samples of encoder delay the decoder hands back in front of the signal: FFmpeg's AAC encoder
# primes with 1024 samples that the MP4 it writes does not signal; LAME's delay is in its header,
# which the MP3 demuxer honours.
PRIMING = {"aac": 1024, "mp3": 0}
CODEC_FALLBACK_RATE = 44100
SNR_RANGE_DB = (-30.0, 100.0)
LOWPASS_RANGE_HZ = (20.0, 100_000.0)
KBPS_RANGE = (8, 320)
RT60_RANGE_S = (0.01, 10.0)
CODEC_FRAME = 1024
VERSION = 1  # bump when a corruption's output changes: cached copies are keyed by it


@dataclass(frozen=True)
class Noise:
    snr_db: float

    @property
    def name(self) -> str:
        return f"noise:{self.snr_db:g}db"

    def apply(self, x: np.ndarray, rate: int, seed: int) -> np.ndarray:
        """(samples,) float32 -> (samples,) float32 with white noise ``snr_db`` below its power."""
        power = float(np.mean(x.astype(np.float64) ** 2)) or 1e-12
        scale = np.sqrt(power / 10 ** (self.snr_db / 10))
        noise = np.random.default_rng(seed).standard_normal(len(x)) * scale
        return (x + noise).astype(np.float32)


@dataclass(frozen=True)
class Lowpass:
    cutoff_hz: float

    @property
    def name(self) -> str:
        return f"lowpass:{self.cutoff_hz:g}"

    def apply(self, x: np.ndarray, rate: int, seed: int) -> np.ndarray:
        """(samples,) float32 -> (samples,) float32 with every frequency above the cutoff removed."""
        spec = np.fft.rfft(x.astype(np.float64))
        spec[np.fft.rfftfreq(len(x), 1.0 / rate) > self.cutoff_hz] = 0
        return np.fft.irfft(spec, n=len(x)).astype(np.float32)


@dataclass(frozen=True)
class Codec:
    kind: str  # "aac" | "mp3"
    kbps: int

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.kbps}k"

    def apply(self, x: np.ndarray, rate: int, seed: int) -> np.ndarray:
        """(samples,) float32 -> (samples,) float32 after encoding and decoding at ``kbps``."""
        return codec_round_trip(x, rate, self.kind, self.kbps * 1000)


@dataclass(frozen=True)
class Reverb:
    rt60_s: float

    @property
    def name(self) -> str:
        return f"reverb:{self.rt60_s:g}"

    def impulse_response(self, rate: int, seed: int) -> np.ndarray:
        """(ceil(rt60 * rate),) float64: 0 at lag 0, then exponentially decaying noise of unit energy."""
        n = max(2, math.ceil(self.rt60_s * rate))
        t = np.arange(n) / rate
        h = np.random.default_rng(seed).standard_normal(n) * np.exp(-3 * math.log(10) * t / self.rt60_s)
        h[0] = 0.0  # the direct path is the dry signal
        return h / np.sqrt(np.sum(h**2))

    def apply(self, x: np.ndarray, rate: int, seed: int) -> np.ndarray:
        """(samples,) float32 -> (samples,) float32: (dry + reverberant) / sqrt(2)."""
        h = self.impulse_response(rate, seed)
        size = 1 << (len(x) + len(h) - 1).bit_length()
        wet = np.fft.irfft(np.fft.rfft(x.astype(np.float64), size) * np.fft.rfft(h, size), size)[: len(x)]
        return ((x + wet) / math.sqrt(2)).astype(np.float32)


Corruption: TypeAlias = Noise | Lowpass | Codec | Reverb
KINDS = ("noise", "lowpass", "aac", "mp3", "reverb")
_NUMBER = r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)"


def parse(spec: str) -> tuple[Corruption, ...]:
    """``"noise:10db,lowpass:2000"`` -> the corruptions in order, each once (by canonical name).

    Raises UsageError naming ``--corrupt`` and the bad item (unknown kind, unparsable or
    out-of-range level, an encoder this PyAV build lacks)."""
    items = [item.strip() for item in spec.split(",")]
    if not any(items):
        raise UsageError(f"{FLAG} {spec!r}: expected KIND:LEVEL,... such as noise:10db,lowpass:2000")
    out: dict[str, Corruption] = {}
    for item in items:
        c = parse_one(item)
        out.setdefault(c.name, c)
    return tuple(out.values())


def parse_one(item: str) -> Corruption:
    """One ``kind:level`` item -> its corruption; UsageError naming ``--corrupt`` if it is bad."""
    kind, sep, level = (part.strip().lower() for part in item.partition(":"))
    if not sep or not kind:
        raise UsageError(f"{FLAG} {item}: expected KIND:LEVEL, e.g. noise:10db (kinds: {', '.join(KINDS)})")
    if kind == "noise":
        snr = _level(item, level, r"(-?" + _NUMBER[1:-1] + r")(db)?", "an SNR in dB such as 10db")
        return Noise(_within(item, snr, SNR_RANGE_DB, "dB"))
    if kind == "lowpass":
        m = re.fullmatch(_NUMBER + r"(k)?(hz)?", level)
        if not m:
            raise UsageError(f"{FLAG} {item}: expected a cutoff in Hz such as lowpass:2000 or lowpass:2k")
        hz = float(m.group(1)) * (1000 if m.group(2) else 1)
        return Lowpass(_within(item, hz, LOWPASS_RANGE_HZ, "Hz"))
    if kind in CODECS:
        kbps = _level(item, level, _NUMBER + r"(k|kbps)?", f"a bit rate in kbit/s such as {kind}:64k")
        if kbps != int(kbps):
            raise UsageError(f"{FLAG} {item}: the bit rate must be a whole number of kbit/s")
        _within(item, kbps, KBPS_RANGE, "kbit/s")
        require_encoder(kind, item)
        return Codec(kind, int(kbps))
    if kind == "reverb":
        rt60 = _level(item, level, _NUMBER + r"(s)?", "an RT60 in seconds such as reverb:0.5")
        return Reverb(_within(item, rt60, RT60_RANGE_S, "s"))
    raise UsageError(f"{FLAG} {item}: unknown kind {kind!r}; choose {', '.join(KINDS)}")


def _level(item: str, level: str, pattern: str, expected: str) -> float:
    m = re.fullmatch(pattern, level)
    if not m:
        raise UsageError(f"{FLAG} {item}: expected {expected}")
    return float(m.group(1))


def _within(item: str, value: float, bounds: tuple[float, float], unit: str) -> float:
    lo, hi = bounds
    if not lo <= value <= hi:
        raise UsageError(f"{FLAG} {item}: {value:g} {unit} is out of range ({lo:g} to {hi:g} {unit})")
    return value


def require_encoder(kind: str, item: str = "") -> None:
    """UsageError when PyAV or its ``kind`` encoder is missing (checked before any work)."""
    encoder = CODECS[kind][0]
    try:
        import av
    except ImportError:
        raise UsageError(f"{FLAG} {item or kind}: needs PyAV (the av package), not installed") from None
    if encoder not in av.codec.codecs_available:
        raise UsageError(
            f"{FLAG} {item or kind}: this PyAV build has no {encoder} encoder, so {kind} cannot be simulated"
        )


def clip_seed(corruption: str, key: str) -> int:
    """The seed of one clip's corruption: a hash of the canonical name and the clip's key."""
    return int.from_bytes(hashlib.sha256(f"{corruption}\0{key}".encode()).digest()[:8], "little")


def codec_round_trip(x: np.ndarray, rate: int, kind: str, bitrate: int) -> np.ndarray:
    """(samples,) float32 mono -> (samples,) float32 encoded with ``kind`` at ``bitrate`` bit/s
    and decoded back, aligned with the input (the encoder's priming removed) and padded or cut
    to its length. Raises DecodeError with a one-line reason when the encoder refuses the clip."""
    import av

    encoder, container = CODECS[kind]
    rates = av.Codec(encoder, "w").audio_rates
    at = rate if not rates or rate in rates else CODEC_FALLBACK_RATE
    signal = x if at == rate else _resample(x, rate, at)
    buf = io.BytesIO()
    try:
        with av.open(buf, "w", format=container) as out:
            stream: Any = out.add_stream(encoder, rate=at, layout="mono")
            stream.bit_rate = bitrate
            for i in range(0, len(signal), CODEC_FRAME):
                frame = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(signal[None, i : i + CODEC_FRAME], dtype=np.float32),
                    format="flt",
                    layout="mono",
                )
                frame.sample_rate = at
                for packet in stream.encode(frame):
                    out.mux(packet)
            for packet in stream.encode(None):
                out.mux(packet)
        buf.seek(0)
        inp: Any
        with av.open(buf) as inp:
            parts = [f.to_ndarray().reshape(-1) for f in inp.decode(audio=0)]
    except av.FFmpegError as exc:
        raise DecodeError(f"{kind} round trip failed: {one_line(exc)}") from None
    decoded = np.concatenate(parts).astype(np.float32)[PRIMING[kind] :] if parts else np.zeros(0, np.float32)
    if at != rate:
        decoded = _resample(decoded, at, rate)
    y = np.zeros(len(x), dtype=np.float32)
    y[: min(len(x), len(decoded))] = decoded[: len(x)]
    return y


def _resample(x: np.ndarray, rate: int, to: int) -> np.ndarray:
    """(samples,) float32 at ``rate`` -> (ceil(samples * to / rate),) float32 at ``to``."""
    from mclx.resample import SoxrStream

    r = SoxrStream(rate, to)
    return np.concatenate([r.push(np.ascontiguousarray(x, dtype=np.float32)), r.flush()])


def read_mono(path: str) -> tuple[np.ndarray, int]:
    """(samples,) float32 mono at the file's own rate, decoded as `mclx embed` decodes it."""
    from mclx.audio import decode_blocks

    rate, parts = 0, []
    for native, block in decode_blocks(path):
        rate = native
        parts.append(block)
    return np.concatenate(parts), rate


def write_copy(c: Corruption, source: str, key: str, target: Path) -> None:
    """Writes ``source`` corrupted by ``c`` (seeded by ``key``) to ``target`` as a mono 32-bit
    float WAV at the source's rate, atomically (a killed run leaves no half file). Raises
    DecodeError for a source that cannot be read or corrupted."""
    import soundfile as sf

    x, rate = read_mono(source)
    y = c.apply(x, rate, clip_seed(c.name, key))
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    sf.write(tmp, y, rate, subtype="FLOAT", format="WAV")
    os.replace(tmp, target)


def copy_name(c: Corruption, key: str, source: str) -> str:
    """The cached copy's file name: changes with the clip's key, its size and mtime, the
    corruption and :data:`VERSION`, so that a stale copy is never reused."""
    st = os.stat(source)
    what = f"{VERSION}\0{c.name}\0{key}\0{st.st_size}\0{st.st_mtime_ns}"
    digest = hashlib.sha256(what.encode()).hexdigest()
    stem = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in Path(key).stem)[:40]
    return f"{digest[:16]}-{stem}.wav"
