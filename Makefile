# The two set-up commands from the README. Both create or refresh .venv first.
DEMO_DIR ?= .s2r-demo

.PHONY: demo test test-fast setup lint bench

setup:
	@bash scripts/setup.sh

# Ingest the bundled sample (3 documents + 2 recordings), search with the bundled spoken
# question, then answer it with the bundled local model.
demo: setup
	.venv/bin/s2r --data-dir $(DEMO_DIR) ingest --no-progress samples/docs samples/speech
	.venv/bin/s2r --data-dir $(DEMO_DIR) search --audio samples/question.flac --top-k 3
	.venv/bin/s2r --data-dir $(DEMO_DIR) ask --audio samples/question.flac

test: setup
	.venv/bin/ruff check .
	.venv/bin/python -m pytest -q

# Everything but the tests marked slow (real models, synthesized speech, s2r subprocesses).
test-fast: setup
	.venv/bin/ruff check .
	.venv/bin/python -m pytest -q -m "not slow"

bench: setup
	.venv/bin/python benchmarks/foundation.py --out benchmarks/results/foundation.json
