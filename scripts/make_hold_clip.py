"""Write app/static/audio/hold.wav: the service's own hold music, made here, free of any licence.

A 24-second loop of soft chords (8 kHz, 16-bit mono, the telephone's own
rate). Each time the clip ends, the caller's hold loop comes back to the
service (a webhook round trip, a short step in the music), so the clip's
length is a balance: 24 s is long enough that the step between plays is
rare, and short enough that an announcement or the longest-wait limit is
never far off. Run it again to change the clip: python scripts/make_hold_clip.py
"""

from __future__ import annotations

import math
import struct
import wave
from pathlib import Path

RATE = 8000
SECONDS_PER_CHORD = 3
C, A_MINOR, F, G, D_MINOR = ((261.63, 329.63, 392.00), (220.00, 261.63, 329.63), (174.61, 220.00, 261.63),
                             (196.00, 246.94, 293.66), (146.83, 174.61, 220.00))
# Eight chords of 3 s: 24 seconds.
CHORDS = (C, A_MINOR, F, G, C, A_MINOR, D_MINOR, G)
OUT = Path(__file__).resolve().parents[1] / "app" / "static" / "audio" / "hold.wav"


def samples():
    per_chord = int(RATE * SECONDS_PER_CHORD)
    for chord in CHORDS:
        for n in range(per_chord):
            t = n / RATE
            # A gentle swell in and out of each chord, so the loop has no clicks.
            envelope = math.sin(math.pi * n / per_chord) ** 2
            value = sum(math.sin(2 * math.pi * f * t) for f in chord) / len(chord)
            yield int(value * envelope * 0.35 * 32767)


def main() -> None:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(OUT), "wb") as clip:
        clip.setnchannels(1)
        clip.setsampwidth(2)
        clip.setframerate(RATE)
        clip.writeframes(b"".join(struct.pack("<h", s) for s in samples()))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
