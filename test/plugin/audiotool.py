#!/usr/bin/python3
"""audiotool: test audio for the plugin's bit-exact tests.

  audiotool gen FMT RATE CH SECONDS OUT   deterministic audio bytes (raw, in ALSA format FMT)
  audiotool same FMT IN_RAW WAV           exit 0 iff WAV's data chunk holds exactly IN_RAW's samples,
                                          then at most silence (aplay pads its last period with it)
                                          (s24_le may be stored packed as 24-bit PCM by the backend:
                                          then the 3 significant bytes of each sample are compared)
  audiotool wav FMT RATE CH IN_RAW OUT    wraps IN_RAW in a WAV header (float formats: tag 3) unchanged
  audiotool find IN_RAW WAV               exit 0 iff IN_RAW's bytes appear contiguously in WAV's data
  audiotool stampgen OUT FRAMES [FROM TO] writes what `stamps` expects, raw (for checks without python)
  audiotool stamps-tail WAV FRAMES        the same for WAV's last FRAMES frames (it may hold more before them)
  audiotool stamps-run WAV FIRST END      exit 0 iff WAV, silence at either end aside, holds consecutive stamps
                                          FIRST..END-1 ("-": any), and prints "FIRST END" as found (the data
                                          runs to the end of the file: a killed writer left its header short)
  audiotool stamps WAV FRAMES [FROM TO]   exit 0 iff WAV (S16_LE stereo) holds exactly FRAMES frames, frame k
                                          stamped with its position k (pcm-positions.c), frames FROM..TO-1 silent
  audiotool anygen FMT CH FRAMES OUT      random samples of any of the 22 sndif formats (valid values)
  audiotool anysame FMT CH IN_RAW FILE    exit 0 iff FILE (sndback's WAV, or its .raw for IEC958) holds
                                          IN_RAW as sndback stores FMT, by its README's rules, written out
                                          here from the formats' definitions (then at most silence)
  audiotool anygen-each CH FRAMES DIR FMT...   anygen of each FMT into DIR/FMT.raw (one process)
  audiotool anysame-each CH DIR FILE... -- FMT...  anysame of DIR/FMT.raw against each FILE, in
                                          order; one line per format: "FMT ok" or "FMT <why>"
FMT is an aplay -f name: U8 S16_LE S24_LE S32_LE FLOAT_LE ...
"""
import math
import random
import struct
import sys

WIDTH = {"U8": 1, "S8": 1, "S16_LE": 2, "S16_BE": 2, "S24_LE": 4, "S32_LE": 4, "FLOAT_LE": 4, "FLOAT64_LE": 8}


def gen(fmt, rate, ch, seconds, out):
    rnd = random.Random(f"{fmt}-{rate}-{ch}")
    frames = int(rate * seconds)
    buf = bytearray()
    for i in range(frames):
        for c in range(ch):
            # a tone per channel plus noise: audible, and every byte position varies
            v = 0.5 * math.sin(2 * math.pi * (220 * (c + 1)) * i / rate) + 0.1 * (rnd.random() - 0.5)
            if fmt == "U8":
                buf += struct.pack("<B", int(128 + 127 * v))
            elif fmt == "S16_LE":
                buf += struct.pack("<h", int(32767 * v))
            elif fmt == "S24_LE":
                buf += struct.pack("<i", int(8388607 * v))  # sign-extended 24 bits in 32
            elif fmt == "S32_LE":
                buf += struct.pack("<i", int(2147483647 * v))
            elif fmt == "FLOAT_LE":
                buf += struct.pack("<f", v)
            else:
                sys.exit(f"audiotool: unsupported format {fmt}")
    with open(out, "wb") as f:
        f.write(buf)


def wav_data(path, to_eof=False):
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except OSError as e:
        sys.exit(f"audiotool: {path}: {e.strerror}")
    if blob[:4] != b"RIFF" or blob[8:12] != b"WAVE":
        sys.exit(f"audiotool: {path} is not a WAV file")
    at, bits = 12, None
    while at + 8 <= len(blob):
        cid, size = blob[at:at + 4], struct.unpack("<I", blob[at + 4:at + 8])[0]
        body = blob[at + 8:at + 8 + size]
        if cid == b"fmt ":
            bits = struct.unpack("<H", body[14:16])[0]
        elif cid == b"data":
            return bits, blob[at + 8:] if to_eof else body
        at += 8 + size + (size & 1)
    sys.exit(f"audiotool: {path} has no data chunk")


def same(fmt, raw_path, wav_path):
    raw = open(raw_path, "rb").read()
    bits, data = wav_data(wav_path)
    if fmt == "S24_LE" and bits == 24:
        raw = b"".join(raw[i:i + 3] for i in range(0, len(raw), 4))
    silence = 0x80 if fmt == "U8" else 0
    if data[:len(raw)] == raw and all(b == silence for b in data[len(raw):]):
        return 0
    n = min(len(raw), len(data))
    first = next((i for i in range(n) if raw[i] != data[i]), n)
    print(f"audiotool: {wav_path}: {len(data)} data bytes, expected {len(raw)}; first difference at byte {first}")
    return 1


def wav(fmt, rate, ch, raw_path, out):
    raw = open(raw_path, "rb").read()
    width = WIDTH[fmt]
    tag = 3 if fmt.startswith("FLOAT") else 1
    bits = 24 if fmt == "S24_LE" else 8 * width  # S24_LE is not a WAV layout; callers avoid it
    fmt_chunk = struct.pack("<HHIIHH", tag, ch, rate, rate * ch * width, ch * width, bits)
    with open(out, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt_chunk) + 8 + len(raw)) + b"WAVE")
        f.write(b"fmt " + struct.pack("<I", len(fmt_chunk)) + fmt_chunk)
        f.write(b"data" + struct.pack("<I", len(raw)) + raw)


def find(raw_path, wav_path):
    raw = open(raw_path, "rb").read()
    _, data = wav_data(wav_path)
    at = data.find(raw)
    if at < 0:
        print(f"audiotool: {raw_path} ({len(raw)} bytes) not found in {wav_path} ({len(data)} bytes)")
        return 1
    print(f"audiotool: found at byte {at}")
    return 0


def stamp(k, silent_from=0, silent_to=0):
    return (0, 0) if silent_from <= k < silent_to else (k & 0xffff, 0x4000 | (k >> 16 & 0x3fff))


def stampgen(out, frames, silent_from=0, silent_to=0):
    with open(out, "wb") as f:
        f.write(b"".join(struct.pack("<HH", *stamp(k, silent_from, silent_to)) for k in range(frames)))


def stamps(wav_path, frames, silent_from=0, silent_to=0, tail=False):
    _, data = wav_data(wav_path)
    if tail and len(data) >= frames * 4:
        data = data[len(data) - frames * 4:]
    if len(data) != frames * 4:
        print(f"audiotool: {wav_path}: {len(data) // 4} frames, expected {frames}")
        return 1
    for k in range(frames):
        left, right = struct.unpack_from("<HH", data, 4 * k)
        want = stamp(k, silent_from, silent_to)
        if (left, right) != want:
            got = (right & 0x3fff) << 16 | left if right & 0x4000 else None
            print(f"audiotool: {wav_path}: frame {k} holds {'silence' if (left, right) == (0, 0) else got}, "
                  f"expected {'silence' if want == (0, 0) else k}")
            return 1
    return 0


def stamp_pos(frame):
    left, right = frame
    return (right & 0x3fff) << 16 | left if right & 0x4000 else None


def stamps_run(wav_path, first, end):
    # To the end of the file: a backend killed while it wrote never finished the header.
    _, data = wav_data(wav_path, to_eof=True)
    frames = [struct.unpack_from("<HH", data, 4 * k) for k in range(len(data) // 4)]
    i, j = 0, len(frames)
    while i < j and frames[i] == (0, 0):
        i += 1
    while j > i and frames[j - 1] == (0, 0):
        j -= 1
    if i == j:
        print(f"audiotool: {wav_path}: {len(frames)} frames of silence, no stamp")
        return 1
    k0 = stamp_pos(frames[i])
    for m in range(i, j):
        if k0 is None or stamp_pos(frames[m]) != k0 + m - i:
            got = stamp_pos(frames[m])
            print(f"audiotool: {wav_path}: frame {m} holds {'silence' if frames[m] == (0, 0) else got}, "
                  f"expected {None if k0 is None else k0 + m - i} (the run began at frame {i} with {k0})")
            return 1
    k1 = k0 + j - i
    if (first != "-" and k0 != int(first)) or (end != "-" and k1 != int(end)):
        print(f"audiotool: {wav_path}: stamps {k0}..{k1 - 1}, expected {first}..{end if end == '-' else int(end) - 1}")
        return 1
    print(f"{k0} {k1}")
    return 0


# The 22 sndif formats by aplay name: container octets, big endian, unsigned, significant bits.
ANY = {
    "S8": (1, False, False, 8), "U8": (1, False, True, 8),
    "S16_LE": (2, False, False, 16), "S16_BE": (2, True, False, 16),
    "U16_LE": (2, False, True, 16), "U16_BE": (2, True, True, 16),
    "S24_LE": (4, False, False, 24), "S24_BE": (4, True, False, 24),
    "U24_LE": (4, False, True, 24), "U24_BE": (4, True, True, 24),
    "S32_LE": (4, False, False, 32), "S32_BE": (4, True, False, 32),
    "U32_LE": (4, False, True, 32), "U32_BE": (4, True, True, 32),
    "FLOAT_LE": (4, False, False, 0), "FLOAT_BE": (4, True, False, 0),
    "FLOAT64_LE": (8, False, False, 0), "FLOAT64_BE": (8, True, False, 0),
    "IEC958_SUBFRAME_LE": (4, False, False, 32), "IEC958_SUBFRAME_BE": (4, True, False, 32),
    "MU_LAW": (1, False, False, 8), "A_LAW": (1, False, False, 8),
}


def any_sample(fmt, rnd):
    """One sample's container bytes, as ALSA lays it out."""
    width, big, unsigned, bits = ANY[fmt]
    if fmt.startswith("FLOAT"):
        v = rnd.uniform(-1.0, 1.0)
        raw = struct.pack("<f" if width == 4 else "<d", v)
    else:
        v = rnd.getrandbits(bits)  # any pattern of the significant bits
        if bits == 24 and not unsigned and v & 0x800000:
            v |= 0xFF000000  # S24 in a 4-octet container: sign-extended
        raw = v.to_bytes(width, "little")
    return raw[::-1] if big else raw


def anygen(fmt, ch, frames, out):
    rnd = random.Random(f"any-{fmt}-{ch}")
    with open(out, "wb") as f:
        f.write(b"".join(any_sample(fmt, rnd) for _ in range(frames * ch)))


def any_stored(fmt, raw):
    """What sndback stores for these samples (its README): WAV's formats byte for byte; the rest
    little endian, unsigned made signed by flipping the top bit, s8 made WAV's unsigned 8 bit the
    same way, 24 bits in 3 octets; IEC958 raw as received."""
    width, big, unsigned, bits = ANY[fmt]
    if fmt.startswith("IEC958") or fmt in ("U8", "MU_LAW", "A_LAW"):
        return raw
    out = bytearray()
    for i in range(0, len(raw) - len(raw) % width, width):
        b = raw[i:i + width][::-1] if big else raw[i:i + width]
        if bits in (8, 16, 24, 32) and (unsigned or fmt == "S8"):
            v = int.from_bytes(b, "little") ^ (1 << (bits - 1))
            b = v.to_bytes(width, "little")
        out += b[:3] if bits == 24 else b
    return bytes(out)


def anysame(fmt, ch, raw_path, path):
    why = anysame_why(fmt, raw_path, path)
    if why:
        print(f"audiotool: {why}")
    return 1 if why else 0


def anysame_why(fmt, raw_path, path):
    """Empty when PATH holds RAW_PATH's samples as sndback stores FMT, else why not."""
    want = any_stored(fmt, open(raw_path, "rb").read())
    data = open(path, "rb").read() if path.endswith(".raw") else wav_data(path)[1]
    silent = {0} if fmt not in ("S8", "U8") else {0x80}
    if fmt in ("MU_LAW", "A_LAW"):
        silent = {0xFF, 0xD5, 0x55, 0x7F, 0}  # their zero codes; aplay pads with the format's silence
    if data[:len(want)] == want and all(b in silent for b in data[len(want):]):
        return ""
    n = min(len(want), len(data))
    first = next((i for i in range(n) if want[i] != data[i]), n)
    return (f"{path}: {len(data)} data bytes, expected {len(want)}; first difference at byte {first}"
            f"{f' (got {data[first]:#04x}, want {want[first]:#04x})' if first < n else ''}")


if __name__ == "__main__":
    a = sys.argv[1:]
    if a[:1] == ["gen"] and len(a) == 6:
        gen(a[1], int(a[2]), int(a[3]), float(a[4]), a[5])
    elif a[:1] == ["same"] and len(a) == 4:
        sys.exit(same(a[1], a[2], a[3]))
    elif a[:1] == ["wav"] and len(a) == 6:
        wav(a[1], int(a[2]), int(a[3]), a[4], a[5])
    elif a[:1] == ["find"] and len(a) == 3:
        sys.exit(find(a[1], a[2]))
    elif a[:1] == ["stampgen"] and len(a) in (3, 5):
        stampgen(a[1], *map(int, a[2:]))
    elif a[:1] == ["stamps"] and len(a) in (3, 5):
        sys.exit(stamps(a[1], *map(int, a[2:])))
    elif a[:1] == ["anygen"] and len(a) == 5:
        anygen(a[1], int(a[2]), int(a[3]), a[4])
    elif a[:1] == ["anysame"] and len(a) == 5:
        sys.exit(anysame(a[1], int(a[2]), a[3], a[4]))
    elif a[:1] == ["anygen-each"] and len(a) >= 5:
        for f in a[4:]:
            anygen(f, int(a[1]), int(a[2]), f"{a[3]}/{f}.raw")
    elif a[:1] == ["anysame-each"] and "--" in a:
        files, fmts = a[3:a.index("--")], a[a.index("--") + 1:]
        for f, path in zip(fmts, files):
            why = anysame_why(f, f"{a[2]}/{f}.raw", path)
            print(f"{f} {why or 'ok'}", flush=True)
    elif a[:1] == ["stamps-run"] and len(a) == 4:
        sys.exit(stamps_run(a[1], a[2], a[3]))
    elif a[:1] == ["stamps-tail"] and len(a) == 3:
        sys.exit(stamps(a[1], int(a[2]), tail=True))
    else:
        sys.exit(__doc__)
