"""Reading frames from an open libsndfile file without corrupting MP3.

Three pitfalls of the stack corrupt or refuse MP3, and this module avoids them
(measured on the 10-min soundscapes of ``../shared/data``, libsndfile 1.2.2 as bundled
with soundfile 0.14, docs/install.md):

- ``SoundFile.read`` asks libsndfile for its position before every read and seeks to
  the new position after it. On MP3 that seek makes libmpg123 restart decoding at the
  MPEG frame it lands in, without the previous frames' bit reservoir. Reading a
  soundscape 65,536 frames at a time then changed 26,607 samples, by up to 0.058, just
  after the block boundaries, and libmpg123 printed 61 "part2_3_length too large"
  errors to stderr (662 for the 7 soundscapes in one ``birdaudio predict``).
  :func:`read_frames` calls libsndfile's ``sf_readf_float`` directly: same samples as
  decoding the file in one read (to float rounding), nothing on stderr.
- A seek into MP3 lands on a frame whose reservoir was never decoded: the samples
  after it were off by up to 0.79 (a low-bitrate file) or 0.06 (a soundscape).
  :func:`seek_frame` decodes from the start instead when the offset is at most
  :data:`MPEG_DECODE_NOT_SEEK_SECONDS` in (exact, and silent), and otherwise seeks
  :data:`MPEG_PREROLL_SAMPLES` earlier for the caller to discard: exact samples, with at
  most a line or two of libmpg123 on stderr per seek.
- libsndfile's frame count of an MP3 is an estimate (libsndfile issue #1001): a file
  libsndfile itself encoded declared 178,825 frames and decoded to 177,984.
  :func:`length_slack` is how far short of its header a complete file may end.
"""

from __future__ import annotations

import numpy as np
import soundfile

__all__ = [
    "MPEG_DECODE_NOT_SEEK_SECONDS",
    "MPEG_FRAME_SAMPLES",
    "MPEG_PREROLL_SAMPLES",
    "length_slack",
    "read_frames",
    "seek_frame",
]

#: Samples per MPEG audio frame that every layer divides: 1,152 (layers II and III),
#: 576 (layer III at MPEG-2 rates) and 384 (layer I).
MPEG_FRAME_SAMPLES = 1152
#: Samples decoded and discarded before an offset in MP3: 8 frames. One was enough on
#: the files measured; the bit reservoir (up to 511 bytes) can reach further back at
#: the lowest bitrates, and 8 frames cost a few milliseconds.
MPEG_PREROLL_SAMPLES = 8 * MPEG_FRAME_SAMPLES
#: Offsets into MP3 reached by decoding from the start rather than by a seek: 10 minutes
#: of audio decode in about half a second on one core (a soundscape of ../shared/data).
MPEG_DECODE_NOT_SEEK_SECONDS = 600.0
# Frames decoded per read while discarding audio before an offset: memory stays flat.
_DISCARD_BLOCK = 64 * MPEG_FRAME_SAMPLES
# The read straight from libsndfile, when this soundfile exposes it (0.10 and later do).
_READF_FLOAT = getattr(getattr(soundfile, "_snd", None), "sf_readf_float", None)
_FFI = getattr(soundfile, "_ffi", None)


def read_frames(sound_file: soundfile.SoundFile, n_frames: int) -> np.ndarray:
    """Up to ``n_frames`` frames from the current position, as float32 ``(frames, channels)``.

    Fewer frames are returned only at the end of the data. Unlike ``SoundFile.read``, no
    seek follows the read, so MP3 is decoded as one continuous stream.

    Raises
    ------
    soundfile.LibsndfileError
        If libsndfile reports an error while decoding.
    """
    out = np.empty((n_frames, sound_file.channels), dtype=np.float32)
    if _READF_FLOAT is None or _FFI is None:  # another soundfile: its own read, seek and all
        return sound_file.read(out=out)
    read = _READF_FLOAT(sound_file._file, _FFI.cast("float *", _FFI.from_buffer(out)), n_frames)
    if sound_file._errorcode:
        raise soundfile.LibsndfileError(sound_file._errorcode, f"reading {sound_file.name}: ")
    return out[:read]


def _is_mpeg(sound_file: soundfile.SoundFile) -> bool:
    return str(sound_file.format) == "MP3"


def seek_frame(sound_file: soundfile.SoundFile, start: int) -> int:
    """Seek to ``start``; in MP3, decode up to it or seek :data:`MPEG_PREROLL_SAMPLES` before it.

    Returns
    -------
    int
        How many frames to read and discard to reach ``start`` (0 but in MP3).
    """
    if not _is_mpeg(sound_file):
        if start:
            sound_file.seek(start)
        return 0
    if start <= MPEG_DECODE_NOT_SEEK_SECONDS * sound_file.samplerate:
        while start > 0:  # decoded and dropped a block at a time
            decoded = read_frames(sound_file, min(start, _DISCARD_BLOCK)).shape[0]
            if not decoded:
                break
            start -= decoded
        return 0
    begin = max(0, start - MPEG_PREROLL_SAMPLES)
    if begin:
        sound_file.seek(begin)
    return start - begin


def length_slack(sound_file: soundfile.SoundFile) -> int:
    """How many frames short of its header's count a complete file may decode to.

    Two MPEG frames for MP3, whose count libsndfile estimates; 0 for other formats,
    where a shortfall means the file is truncated.
    """
    return 2 * MPEG_FRAME_SAMPLES if _is_mpeg(sound_file) else 0
