"""Answers: the prompt's sources, the conversation, the chat client and the local llama.cpp
model."""
