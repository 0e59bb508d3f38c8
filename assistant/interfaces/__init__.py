"""The ways in: the s2r command, the HTTP service, LlamaIndex and the voice chat loop."""
