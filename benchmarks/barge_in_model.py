"""Barge-in while the local model is still reading the prompt: how soon the next request is
answered, with the voice loop's abortable client against a blocking httpx client.

Each round sends a long prompt (a distinct one, so no cache helps) as a stream, closes it
from another thread ``--after`` seconds later (the user spoke again before the first token),
then at once sends a short request, as the next turn would, and times its answer.  The two
clients alternate round by round.  Prints a Markdown table and writes JSON (``--out``).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np
import spoken_turns

from assistant.answer.chat_client import AbortableChatClient, ChatClient, ChatConfig, LLMError
from assistant.answer.local_llm import LocalLLMServer
from assistant.settings import Settings

FILLER = ("Yoga is a group of physical, mental, and spiritual practices or disciplines which "
          "originated in ancient India and aim to control and still the mind. ")
CLIENTS = {"blocking": ChatClient, "abortable": AbortableChatClient}


def one_round(config: ChatConfig, kind: str, round_no: int, after_s: float, words: int
              ) -> float:
    """Seconds from the close of the long stream to the short request's answer."""
    long_prompt = f"Round {round_no} {kind}. " + FILLER * max(1, words // 25)
    chat = CLIENTS[kind](config)

    def read() -> None:
        stream = chat.stream([{"role": "user", "content": long_prompt}])
        try:
            next(stream, None)  # as the voice loop does: a cancelled turn stops at a delta
        except LLMError:
            pass  # the close under it
        finally:
            stream.close()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(after_s)
    chat.close()
    closed = time.perf_counter()
    nxt = ChatClient(config)
    try:
        nxt.complete([{"role": "user", "content": f"Say yes ({round_no} {kind})."}],
                     max_tokens=1)
    finally:
        nxt.close()
    waited = time.perf_counter() - closed
    reader.join(120)
    return waited


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=4, help="rounds per client (default 4)")
    parser.add_argument("--after", type=float, default=0.5,
                        help="seconds into the long prompt the close comes (default 0.5)")
    parser.add_argument("--words", type=int, default=200,
                        help="length of the long prompt in words (default 200)")
    parser.add_argument("--llm", default="", help="local model: qwen, smollm2 or a GGUF path")
    parser.add_argument("--out", help="write the results as JSON")
    args = parser.parse_args()
    settings = Settings.load(llm_gguf=args.llm, llm_url="")
    server = LocalLLMServer.from_settings(settings)
    if server is None:
        sys.exit("no local model is installed (make setup installs one)")
    url = server.start()
    config = ChatConfig.from_settings(settings, url=url, model=server.model)
    waits: dict[str, list[float]] = {kind: [] for kind in CLIENTS}
    try:
        for round_no in range(args.rounds):
            for kind in CLIENTS:
                waits[kind].append(one_round(config, kind, round_no, args.after, args.words))
    finally:
        server.stop()
    result = {"model": server.gguf.name, "threads": server.threads, "rounds": args.rounds,
              "after_s": args.after, "words": args.words,
              "wait_ms": {k: [round(v * 1e3, 1) for v in vs] for k, vs in waits.items()},
              **spoken_turns.provenance()}
    print(f"{server.gguf.name}, {server.threads} threads; close {args.after:g} s into a "
          f"{args.words}-word prompt, then a one-token request\n")
    print("| client | next request answered after the close, p50 / max ms |\n|---|---|")
    for kind, values in waits.items():
        print(f"| {kind} | {np.median(values) * 1e3:.0f} / {max(values) * 1e3:.0f} |")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
