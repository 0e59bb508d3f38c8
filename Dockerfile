# s2r runtime image: the CLI with its offline models (Whisper tiny.en, MiniLM) baked in.
FROM python:3.11-slim-bookworm

# torch goes first and pinned so nothing pulls an unpinned (CUDA, multi-GB) build; pass
# --build-arg PIP_EXTRA_INDEX_URL=<a CPU wheel index> to get the small CPU build.
ARG TORCH_SPEC=torch==2.13.0
ARG PIP_EXTRA_INDEX_URL=""
ENV PIP_NO_CACHE_DIR=1 PIP_EXTRA_INDEX_URL=${PIP_EXTRA_INDEX_URL}
RUN pip install "${TORCH_SPEC}"

WORKDIR /app
COPY pyproject.toml README.md ./
COPY assistant assistant
COPY connectors connectors
RUN pip install .

ENV S2R_DATA_DIR=/var/lib/s2r S2R_CACHE_DIR=/var/cache/s2r
VOLUME ["/var/lib/s2r", "/var/cache/s2r"]
ENTRYPOINT ["s2r"]
CMD ["--help"]
