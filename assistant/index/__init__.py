"""Ingest: files through the connectors into chunks, the manifest and the store."""
