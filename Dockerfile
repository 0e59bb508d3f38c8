# s2r runtime image: the CLI and the HTTP service with their offline models (Whisper tiny.en,
# MiniLM, and by default the Qwen2.5 1.5B answer model) baked in.
FROM python:3.11-slim-bookworm

# torch goes first and pinned so nothing pulls an unpinned (CUDA, multi-GB) build; pass
# --build-arg PIP_EXTRA_INDEX_URL=<a CPU wheel index> to get the small CPU build.
ARG TORCH_SPEC=torch==2.13.0
ARG PIP_EXTRA_INDEX_URL=""
# server: `s2r serve`; llm: llama.cpp's server (the prebuilt xllamacpp wheel, portable to any
# x86-64 CPU with AVX2: the image builds nothing); qwen: the local answer model.
# --build-arg EXTRAS=server gives a small image that needs S2R_LLM_URL.
ARG EXTRAS=server,llm,qwen
ENV PIP_NO_CACHE_DIR=1 PIP_EXTRA_INDEX_URL=${PIP_EXTRA_INDEX_URL}
RUN pip install "${TORCH_SPEC}"

WORKDIR /app
COPY pyproject.toml README.md ./
COPY assistant assistant
COPY connectors connectors
COPY prompts prompts
RUN pip install ".[${EXTRAS}]"

ENV S2R_DATA_DIR=/var/lib/s2r S2R_CACHE_DIR=/var/cache/s2r
VOLUME ["/var/lib/s2r", "/var/cache/s2r"]
EXPOSE 8000
ENTRYPOINT ["s2r"]
CMD ["--help"]
