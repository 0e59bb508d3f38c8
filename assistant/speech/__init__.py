"""Speech in and out: audio, voice activity, Whisper (the padded cascade and the integrated
decode), the e2e head, and the voices that speak."""
