#!/usr/bin/python3
"""apptool: test audio and its checks for the sound-server tests (test/apps/test-pipewire,
test/apps/test-pulseaudio). All audio is s16le, 48000 Hz, stereo: 4-byte frames.

  apptool gen SEED SECONDS AMP OUT.wav
      random samples in [-AMP, AMP] (deterministic per SEED), never an all-zero frame: the payload
      of a recording is then exactly the span from its first to its last non-silent frame, and a
      shift, loss or repetition of any frame shows
  apptool framed SRC.wav OUT.wav
      OUT (a WAV, or raw) is silence, all of SRC, silence: nothing lost, added or changed
  apptool prefix SRC.wav MAX_MISSING OUT [REF]
      OUT's payload is SRC's first frames, at most MAX_MISSING frames short (PipeWire drops the
      last partial quantum of a stream); with REF, REF's payload is byte for byte the same
  apptool in-order SRC.wav MAX_MISSING OUT
      OUT's non-silent frames are SRC's first frames in order, at most MAX_MISSING short (silence
      inserted between them is counted and reported, not an error)
  apptool mix A.wav B.wav OUT
      OUT is silence, then A alone, then from one frame on (B entered) A+B sample by sample (B
      started while A played, both at unity gain), then A alone once B ended, then silence
  apptool commits SRC.wav TRACE
      every frame the traced server took from a capture PCM (test/apps/pcm-trace.c: its mmap
      commits carry an FNV-1a hash of the bytes) is SRC's frame at that stream position (silence
      past SRC's end); exactly one traced capture stream committed, and at least 90 % of SRC
Prints one line saying what it found; exits 0 when the check holds, 1 when not, 2 on bad input.
"""
import array
import random
import struct
import sys

FRAME = 4
RATE = 48000
SILENT = b"\0" * FRAME


def die(msg):
    print(f"apptool: {msg}")
    sys.exit(2)


def read_audio(path):
    """The data chunk of a WAV (checked to be s16 stereo 48 kHz), or a raw file as it is."""
    with open(path, "rb") as f:
        blob = f.read()
    if blob[:4] != b"RIFF":
        return blob[: len(blob) - len(blob) % FRAME]
    if blob[8:12] != b"WAVE":
        die(f"{path}: not a WAV file")
    at, fmt = 12, None
    while at + 8 <= len(blob):
        cid, size = blob[at:at + 4], struct.unpack("<I", blob[at + 4:at + 8])[0]
        body = blob[at + 8:at + 8 + size]
        if cid == b"fmt ":
            fmt = struct.unpack("<HHIIHH", body[:16])
        elif cid == b"data":
            if not fmt or fmt[1] != 2 or fmt[2] != RATE or fmt[5] != 16:
                die(f"{path}: not s16 stereo {RATE} Hz (fmt {fmt})")
            return body[: len(body) - len(body) % FRAME]
        at += 8 + size + (size & 1)
    die(f"{path}: no data chunk")


def write_wav(path, data):
    header = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 1, 2, RATE, RATE * FRAME, FRAME, 16)
    header += b"data" + struct.pack("<I", len(data))
    with open(path, "wb") as f:
        f.write(header + data)


def gen(seed, seconds, amp, out):
    rnd = random.Random(seed)
    frames = int(RATE * seconds)
    samples = array.array("h", rnd.randbytes(frames * FRAME))
    if amp < 32767:
        span = 2 * amp + 1
        samples = array.array("h", (v % span - amp for v in samples))
    for i in range(0, len(samples), 2):
        if samples[i] == 0 and samples[i + 1] == 0:
            samples[i] = 1
    write_wav(out, samples.tobytes())


def frames(data):
    return len(data) // FRAME


def payload(data):
    """(leading silent frames, the bytes from the first to the last non-silent frame, trailing)."""
    n = frames(data)
    first = 0
    while first < n and data[first * FRAME:(first + 1) * FRAME] == SILENT:
        first += 1
    last = n
    while last > first and data[(last - 1) * FRAME:last * FRAME] == SILENT:
        last -= 1
    return first, data[first * FRAME:last * FRAME], n - last


def first_difference(a, b):
    n = min(len(a), len(b))
    lo = 0
    while lo < n and a[lo:lo + 65536] == b[lo:lo + 65536]:
        lo += 65536
    while lo < n and a[lo] == b[lo]:
        lo += 1
    return lo // FRAME


def framed(src_path, out_path):
    src, out = read_audio(src_path), read_audio(out_path)
    lead, body, trail = payload(out)
    if body == src:
        print(f"all {frames(src)} frames, {lead} silent frames before, {trail} after")
        return 0
    print(f"{out_path}: payload of {frames(body)} frames after {lead} silent ones is not the {frames(src)} "
          f"source frames: first difference at payload frame {first_difference(body, src)}")
    return 1


def prefix(src_path, max_missing, out_path, ref_path=None):
    src, out = read_audio(src_path), read_audio(out_path)
    lead, body, trail = payload(out)
    missing = frames(src) - frames(body)
    if body != src[:len(body)]:
        print(f"{out_path}: payload ({frames(body)} frames after {lead} silent ones) differs from the source "
              f"at frame {first_difference(body, src)}")
        return 1
    if missing < 0 or missing > max_missing:
        print(f"{out_path}: payload is the source's first {frames(body)} frames: {missing} of "
              f"{frames(src)} missing (at most {max_missing} may be)")
        return 1
    what = f"payload = the source's first {frames(body)} of {frames(src)} frames ({lead} silent frames before)"
    if ref_path:
        ref_lead, ref_body, _ = payload(read_audio(ref_path))
        if ref_body != body:
            print(f"{out_path}: {what}, but the reference's payload ({frames(ref_body)} frames) differs at frame "
                  f"{first_difference(body, ref_body)}")
            return 1
        what += f"; the reference's payload is identical ({ref_lead} silent frames before it)"
    print(what)
    return 0


def in_order(src_path, max_missing, out_path):
    src, out = read_audio(src_path), read_audio(out_path)
    lead, body, _ = payload(out)
    kept = bytearray()
    silent = 0
    for i in range(0, len(body), FRAME):
        f = body[i:i + FRAME]
        if f == SILENT:
            silent += 1
        else:
            kept += f
    missing = frames(src) - frames(kept)
    if bytes(kept) != src[:len(kept)] or missing < 0 or missing > max_missing:
        print(f"{out_path}: the {frames(kept)} non-silent frames are not the source's first frames in order "
              f"(first difference at frame {first_difference(bytes(kept), src)}; {missing} missing, at most "
              f"{max_missing} may be)")
        return 1
    print(f"the source's first {frames(kept)} of {frames(src)} frames in order; {silent} silent frames "
          f"inserted between them")
    return 0


def mix(a_path, b_path, out_path):
    a = array.array("h", read_audio(a_path))
    b = array.array("h", read_audio(b_path))
    out_bytes = read_audio(out_path)
    lead, body, trail = payload(out_bytes)
    o = array.array("h", body)
    # A must begin the payload; B enters at the first frame that is not A alone.
    k = 0
    while k < len(a) and k < len(o) and o[k] == a[k]:
        k += 1
    k -= k % 2
    if k == 0:
        print(f"{out_path}: the payload does not start with A's first frame")
        return 1
    if k >= len(a):
        print(f"{out_path}: A played alone to its end: B never entered")
        return 1
    expected = array.array("h", a)
    n_b = min(len(b), len(a) - k)
    for i in range(n_b):
        expected[k + i] += b[i]
    if len(b) > n_b:
        expected.extend(b[n_b:])
    if o != expected:
        diff = next((i for i in range(min(len(o), len(expected))) if o[i] != expected[i]),
                    min(len(o), len(expected)))
        print(f"{out_path}: B entered at A's frame {k // 2} ({k / 2 / RATE * 1000:.1f} ms), but from A's frame "
              f"{diff // 2} on the output is not A+B ({len(o) // 2} payload frames, {len(expected) // 2} expected)")
        return 1
    print(f"A alone for its first {k // 2} frames ({k / 2 / RATE * 1000:.1f} ms), then A+B exactly for B's "
          f"{len(b) // 2} frames, then A alone to its end ({len(a) // 2} frames); {lead} silent frames before")
    return 0


def fnv1a(data):
    h = 0xcbf29ce484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def commits(src_path, trace_path):
    src = read_audio(src_path)
    streams, moves = set(), {}
    with open(trace_path) as f:
        for line in f:
            w = line.split()
            if len(w) < 5:
                die(f"{trace_path}: a short line: {line.strip()}")
            if w[3] == "open" and "stream=C" in w:
                streams.add(w[2])
            elif w[2] in streams and w[3] in ("commit", "forward", "rewind", "readi", "readn") and int(w[4]) != 0:
                moves.setdefault(w[2], []).append(w)
    if len(moves) != 1:
        print(f"{len(moves)} traced capture streams moved their pointer (1 expected)")
        return 1
    (pcm, lines), = moves.items()
    pos = good = 0
    for w in lines:
        ret = int(w[4])
        if w[3] != "commit" or ret < 0 or not any(k.startswith("fnv=") for k in w):
            print(f"pcm {pcm}: at stream frame {pos}, '{' '.join(w[3:])}' moved the pointer without a hash "
                  f"({good} frames checked before)")
            return 1
        want = src[pos * FRAME:(pos + ret) * FRAME]
        want += b"\0" * (ret * FRAME - len(want))
        got = next(k for k in w if k.startswith("fnv="))[4:]
        if f"{fnv1a(want):016x}" != got:
            print(f"pcm {pcm}: the {ret} frames committed at stream frame {pos} are not the source's "
                  f"({good} frames checked before)")
            return 1
        pos += ret
        good += ret
    if good < frames(src) * 9 // 10:
        print(f"pcm {pcm}: only {good} of the source's {frames(src)} frames were committed")
        return 1
    print(f"pcm {pcm}: all {good} frames committed are the source's at their stream positions "
          f"({len(lines)} commits)")
    return 0


def main(argv):
    if argv[:1] == ["gen"] and len(argv) == 5:
        gen(argv[1], float(argv[2]), int(argv[3]), argv[4])
        return 0
    if argv[:1] == ["framed"] and len(argv) == 3:
        return framed(argv[1], argv[2])
    if argv[:1] == ["prefix"] and len(argv) in (4, 5):
        return prefix(argv[1], int(argv[2]), *argv[3:])
    if argv[:1] == ["in-order"] and len(argv) == 4:
        return in_order(argv[1], int(argv[2]), argv[3])
    if argv[:1] == ["commits"] and len(argv) == 3:
        return commits(argv[1], argv[2])
    if argv[:1] == ["mix"] and len(argv) == 4:
        return mix(argv[1], argv[2], argv[3])
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
