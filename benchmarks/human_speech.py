"""A benchmark directory of real human speech from Debian packages: the dev check that no
synthetic voice stands in for.

Two packages in Debian main carry English words spoken by people, with their text in the file
names:

- ``ktuberling-data``: KTuberling's 72 English object names ("umbrella", "pepperoni",
  "falling star"), one speaker;
- ``alsa-utils``: the speaker-test channel names ("front left", "rear center"), another.

Single words and two-word names, not questions: this is a recognition check (WER on real
voices, above all on clips a second long, where a decode window sized to the utterance is
shortest) more than a retrieval one.  The corpus holds one passage per clip text, each query's
relevant passage is its own text, so ``s2r eval`` runs on it unchanged.  Every query has
``"family": "human"``.  The Asterisk prompts stay out: they are the project's held-out check.

    python benchmarks/human_speech.py bench-data/human      # apt-get download, then build
    s2r eval bench-data/human --systems transcript,cascade,s2r
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import tempfile
from pathlib import Path

from assistant.speech.audio import SAMPLE_RATE, decode_audio, write_flac

PACKAGES = ("ktuberling-data", "alsa-utils")
# KTuberling files name a scene and an object ("egypt_palmtree"); these objects are spoken as
# two words or spelt otherwise than the file name.
SPOKEN = {"palmtree": "palm tree", "fallingstar": "falling star", "sphynx": "sphinx",
          "broccolli": "broccoli", "moonwalker": "moon walker"}
SCENES = ("egypt_", "moon_", "pizzeria_", "tv_")


def ktuberling_text(stem: str) -> str:
    for scene in SCENES:
        stem = stem.removeprefix(scene)
    return SPOKEN.get(stem, stem.replace("_", " "))


def alsa_text(stem: str) -> str:
    return stem.replace("_", " ").lower()


def recordings(root: Path) -> list[tuple[Path, str, str]]:
    """(audio file, reference text, speaker) of every English clip under an unpacked root."""
    found = [(f, ktuberling_text(f.stem), "ktuberling")
             for f in sorted((root / "usr/share/ktuberling/sounds/en").glob("*.ogg"))]
    found += [(f, alsa_text(f.stem), "alsa")
              for f in sorted((root / "usr/share/sounds/alsa").glob("*.wav"))
              if f.stem != "Noise"]
    return found


def unpack(packages: tuple[str, ...], into: Path) -> None:
    """``apt-get download`` each package (needs Debian's package lists) and unpack it."""
    subprocess.run(["apt-get", "download", *packages], cwd=into, check=True,
                   capture_output=True)
    for deb in into.glob("*.deb"):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(into / "root")], check=True)


def build(out: Path, root: Path) -> int:
    clips = recordings(root)
    if not clips:
        raise SystemExit(f"no recordings under {root}")
    (out / "audio").mkdir(parents=True, exist_ok=True)
    texts = sorted({text for _, text, _ in clips})
    doc_id = {text: f"d{i:03d}" for i, text in enumerate(texts)}
    with (out / "corpus.jsonl").open("w", encoding="utf-8") as fh:
        for text in texts:
            fh.write(json.dumps({"id": doc_id[text], "title": "", "text": text}) + "\n")
    with (out / "queries.jsonl").open("w", encoding="utf-8") as fh:
        for i, (path, text, speaker) in enumerate(clips):
            name = f"audio/h{i:03d}.flac"
            write_flac(out / name, decode_audio(path), SAMPLE_RATE)
            fh.write(json.dumps({"id": f"h{i:03d}", "audio": name, "text": text,
                                 "relevant": [doc_id[text]], "family": "human",
                                 "voice": f"human:{speaker}",
                                 "source": re.sub(r"^.*?/usr/", "/usr/", str(path))}) + "\n")
    return len(clips)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="benchmark directory to write")
    parser.add_argument("--root", type=Path,
                        help="an unpacked root that holds the packages' files (default: "
                        f"apt-get download {' '.join(PACKAGES)} into a temporary folder)")
    args = parser.parse_args()
    if args.root:
        n = build(args.out, args.root)
    else:
        with tempfile.TemporaryDirectory(prefix="s2r-human-") as tmp:
            unpack(PACKAGES, Path(tmp))
            n = build(args.out, Path(tmp) / "root")
    print(f"wrote {args.out}: {n} recorded clips")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
