"""Which files are audio, and which decoder reads each kind (imports nothing: used by --help)."""

from __future__ import annotations

# Extensions each decoder is chosen for. A walk of a directory reads exactly these.
SNDFILE_EXTENSIONS = frozenset(
    {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".au", ".caf"}
)
FFMPEG_EXTENSIONS = frozenset(
    {".m4a", ".m4b", ".m4p", ".mp4", ".aac", ".webm", ".weba", ".mka", ".wma", ".asf", ".ape", ".wv", ".ac3"}
)
AUDIO_EXTENSIONS = SNDFILE_EXTENSIONS | FFMPEG_EXTENSIONS
DRM_EXTENSIONS = {".m4p": "FairPlay-protected AAC (iTunes Store purchase before 2009)"}


def formats_help() -> str:
    """The extensions a directory walk reads, for --help and messages."""
    return " ".join(sorted(ext.lstrip(".") for ext in AUDIO_EXTENSIONS))
