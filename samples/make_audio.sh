#!/usr/bin/env bash
# Regenerates the bundled spoken sample with espeak-ng (the committed FLAC files came from this).
set -euo pipefail
cd "$(dirname "$0")"
say() {  # say OUT.flac VOICE TEXT...: one sentence per argument, 0.6 s pause between them
  local out=$1 voice=$2; shift 2
  local tmp; tmp=$(mktemp -d)
  local parts=()
  for sentence in "$@"; do
    espeak-ng -v "$voice" -s 150 -w "$tmp/${#parts[@]}.wav" "$sentence"
    sox -q "$tmp/${#parts[@]}.wav" -r 16000 -c 1 "$tmp/p${#parts[@]}.wav" pad 0 0.6
    parts+=("$tmp/p${#parts[@]}.wav")
  done
  sox -q "${parts[@]}" -r 16000 -c 1 "$out"
  rm -r "$tmp"
}
say speech/coffee_history.flac en-us \
  "Welcome to this short talk about the history of coffee." \
  "Coffee was first cultivated in Yemen in the fifteenth century, where Sufi monks drank it to stay awake during night prayers." \
  "From the port of Mocha, coffee spread to Cairo, Istanbul and then to Europe." \
  "The first coffee house in London opened in sixteen fifty two."
say speech/amazon_river.flac en-gb-x-rp \
  "The Amazon is the largest river in the world by the volume of water it carries." \
  "It flows from the Andes mountains in Peru across Brazil to the Atlantic Ocean." \
  "Its basin holds more than half of the remaining rainforest on Earth."
say question.flac en-us "Where was coffee first grown?"
# A two-question conversation for `s2r talk --input`, with time for each answer.
tmp=$(mktemp -d)
espeak-ng -v en-us -s 150 -w "$tmp/q1.wav" "Who built the first working transistor?"
espeak-ng -v en-gb -s 150 -w "$tmp/q2.wav" "How do honeybees tell others where food is?"
sox -q "$tmp/q1.wav" -r 16000 -c 1 "$tmp/p1.wav" pad 0.5 16
sox -q "$tmp/q2.wav" -r 16000 -c 1 "$tmp/p2.wav" pad 0 14
sox -q "$tmp/p1.wav" "$tmp/p2.wav" -r 16000 -c 1 conversation.flac
rm -r "$tmp"
