"""Search: the chunk record, the embedder, the sparse legs, coverage, the Qdrant stores and the
retriever that runs each spoken path."""
