"""Converts LibriSpeech train-clean-100 and the CPC authors' phone alignments into the plain
arrays `nce.full` reads.

CPC (van den Oord et al. 2018, arXiv 1807.03748, Sec. 3.1) probes on the 100-hour subset with
force-aligned phones the authors released with their train/test split of that subset:
`converted_aligned_phones.txt` (one line per utterance: its id, then one phone id per 10 ms
frame, 41 classes) and `train_split.txt` / `test_split.txt` (one utterance id per line).
The alignment has Kaldi's frame count (25 ms window, 10 ms hop, snip-edges):
`(samples - 400) // 160 + 1`; a line more than one frame away from it is an error.

Usage: python librispeech_to_npy.py TRAIN_CLEAN_100_DIR converted_aligned_phones.txt
train_split.txt test_split.txt OUT_DIR

TRAIN_CLEAN_100_DIR is LibriSpeech's `train-clean-100` folder: `<speaker>/<chapter>/
<speaker>-<chapter>-<utterance>.flac` (a `.wav` beside it is read too). Writes
OUT_DIR/librispeech/{train,test}/<utterance>.wav.npy (float32 [samples] in [-1, 1], 16 kHz mono)
and <utterance>.phones.npy (int64 [frames]); `nce.full` takes the speaker from the utterance id.
FLAC needs `soundfile` (or `torchaudio`) in this python; WAV is read with the standard library
when neither is there. An utterance of a split list without an alignment line is skipped and
counted; a missing audio file, another sample rate or a mismatched alignment stops the run.
"""
import os
import sys
import wave

import numpy as np

RATE = 16000
HOP = 160
WINDOW = 400


def read_audio(path):
    """The waveform as float32 in [-1, 1] and its sample rate."""
    try:
        import soundfile

        x, rate = soundfile.read(path, dtype="float32")
        return np.asarray(x), rate
    except ImportError:
        pass
    try:
        import torchaudio

        x, rate = torchaudio.load(path)
        return x.numpy()[0] if x.shape[0] == 1 else x.numpy().T, rate
    except ImportError:
        pass
    if not path.endswith(".wav"):
        sys.exit(f"{path}: reading FLAC needs soundfile or torchaudio (pip install soundfile)")
    with wave.open(path, "rb") as w:
        if w.getsampwidth() != 2:
            sys.exit(f"{path}: expected 16-bit PCM, got {8 * w.getsampwidth()}-bit samples")
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0
        if w.getnchannels() != 1:
            x = x.reshape(-1, w.getnchannels())
        return x, w.getframerate()


def audio_path(root, utt):
    speaker, chapter, _ = utt.split("-")
    base = os.path.join(root, speaker, chapter, utt)
    for ext in (".flac", ".wav"):
        if os.path.exists(base + ext):
            return base + ext
    sys.exit(f"{utt}: no {base}.flac (or .wav) in {root}")


def kaldi_frames(samples):
    return 0 if samples < WINDOW else (samples - WINDOW) // HOP + 1


def main(root, alignments, train_list, test_list, out):
    phones = {}
    with open(alignments) as f:
        for n, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            try:
                phones[parts[0]] = np.asarray([int(p) for p in parts[1:]], dtype=np.int64)
            except ValueError:
                sys.exit(f"{alignments}:{n}: expected an utterance id then integer phone ids")
    for split, listing in (("train", train_list), ("test", test_list)):
        with open(listing) as f:
            utts = [u.strip() for u in f if u.strip()]
        folder = os.path.join(out, "librispeech", split)
        os.makedirs(folder, exist_ok=True)
        written, unaligned = 0, 0
        for utt in utts:
            if len(utt.split("-")) != 3:
                sys.exit(f"{listing}: `{utt}` is not a LibriSpeech id "
                         "<speaker>-<chapter>-<utterance>")
            if utt not in phones:
                unaligned += 1
                continue
            x, rate = read_audio(audio_path(root, utt))
            if rate != RATE or x.ndim != 1:
                sys.exit(f"{utt}: expected 16 kHz mono, got {rate} Hz with shape {x.shape}")
            y = phones[utt]
            expected = kaldi_frames(len(x))
            if abs(len(y) - expected) > 1:
                sys.exit(f"{utt}: {len(y)} aligned frames, but its {len(x)} samples make "
                         f"{expected} frames of 25 ms every 10 ms; expected the same count "
                         "within one frame")
            np.save(os.path.join(folder, f"{utt}.wav.npy"), x.astype(np.float32))
            np.save(os.path.join(folder, f"{utt}.phones.npy"), y)
            written += 1
        print(f"{split}: {written} utterances -> {folder} "
              f"({unaligned} of the list without alignment, skipped)")


if __name__ == "__main__":
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    main(*sys.argv[1:6])
