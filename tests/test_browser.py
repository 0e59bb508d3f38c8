"""The voice page in a real browser: headless Chromium, its microphone a recorded question
(``--use-file-for-fake-audio-capture``), against s2r on a real loopback socket.  The page
opens hands-free (``?auto=1``), streams the question over /v1/talk and shows what comes back;
the test reads the page through the DevTools protocol (tests/browser_harness.py).  The
push-to-talk test holds the space bar instead, over one of two recorded questions.

Nothing is timed: the tests wait for what the page shows, ``GUARD_S`` only keeps a broken
page from hanging them.  The recordings play in real time, so the barge-in test leaves the
answer seconds to start before the second question (see ``BARGE_IN_GAP_S``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import numpy as np
import pytest

from assistant.speech.audio import SAMPLE_RATE, write_wav
from tests.browser_harness import CHROMIUM, Browser
from tests.conftest import silence
from tests.fake_llm import GUARD_S, Step
from tests.web_helpers import KEY, RECORDING, RunningServer, web_collection

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (scripts/setup.sh installs it)")]
QUESTION = "Where was coffee first grown?"
ANSWER = "Coffee was first grown in Yemen [1]."
FIRST_QUESTION = "Who built the first working transistor?"
# One long first sentence (about 12 s spoken), then the model holds: the page is still
# playing that sentence when the second question comes, and the turn is still answering.
LONG_SENTENCE = ("The first working transistor was built at Bell Labs in December 1947 by John "
                 "Bardeen and Walter Brattain, in the solid state physics group that William "
                 "Shockley led, and it was a point contact device made of a slab of germanium "
                 "with two gold contacts pressed against it by a plastic wedge [1].")
HELD = LONG_SENTENCE + " Shockley then designed the junction transistor [1]."
# Seconds between the end of the first question and the second: the answer's first audio
# comes about 0.7 s after the end of the question, so it has seconds to spare on a loaded
# machine, and it is still playing when the second question interrupts it.
BARGE_IN_GAP_S = 5.0
# Seconds between the question said with the space bar up and the one said holding it: the
# bar goes down halfway, so the microphone may start up to half of it late.
PUSH_GAP_S = 5.0


def microphone(path, *parts: np.ndarray):
    """A recording for the fake microphone: a second of silence, the parts, 3 s of silence
    (the pause that ends the last turn)."""
    return write_wav(path, np.concatenate([silence(1.0), *parts, silence(3.0)]))


def answered(turns: int) -> Callable[[dict], bool]:
    return lambda page: len(page["turns"]) >= turns and page["turns"][turns - 1]["done"]


@pytest.fixture(scope="module")
def collection(models, tmp_path_factory):
    runtime = web_collection(models, tmp_path_factory.mktemp("browser-data"))
    yield runtime
    runtime.close()


def test_the_page_hears_a_question_and_shows_and_plays_the_answer(collection, fake, speak,
                                                                  tmp_path):
    fake.default = Step(text=ANSWER)
    mic = microphone(tmp_path / "question.wav", speak(QUESTION))
    with RunningServer(collection, llm_url=fake.url, api_key=KEY) as server, \
            Browser(mic, tmp_path / "profile") as browser:
        browser.open(f"{server.url}/?key={KEY}&auto=1")
        page = browser.wait_for_page(answered(1), "an answered turn")
        duration = browser.play_span()  # the recording cited, fetched with the key
    turn = page["turns"][0]
    assert "coffee" in turn["heard"].lower(), page
    first = turn["sources"][0]
    assert first["title"] == RECORDING.stem and first["kind"] == "audio", page
    assert first["play"] and first["passage"], page
    assert any(s["kind"] == "text" and s["passage"] for s in turn["sources"][1:]), page
    assert turn["answer"] == ANSWER
    assert page["audioChunks"] > 0  # the spoken answer reached the page's player
    assert "key" not in page["search"]  # the key left the address bar
    start, end = (float(x) for x in re.findall(r"[\d.]+", first["play"]))
    assert duration == pytest.approx(end - start, abs=1 / 16_000)


def test_talking_over_the_spoken_answer_stops_it_in_the_page(collection, fake, speak,
                                                             tmp_path):
    fake.script.append(Step(text=HELD, hold_after=len(LONG_SENTENCE.split()) + 1))
    fake.default = Step(text=ANSWER)
    mic = microphone(tmp_path / "barge-in.wav", speak(FIRST_QUESTION), silence(BARGE_IN_GAP_S),
                     speak(QUESTION))
    with RunningServer(collection, llm_url=fake.url, api_key=KEY) as server, \
            Browser(mic, tmp_path / "profile") as browser:
        browser.open(f"{server.url}/?key={KEY}&auto=1")
        page = browser.wait_for_page(answered(2), "the second question answered")
    first, second = page["turns"]
    assert "transistor" in first["heard"].lower(), page
    assert first["interrupted"] and first["answer"].startswith("The first working"), page
    # the page was playing the long sentence and cut it off: nothing of it is left queued
    assert page["stoppedChunks"] >= 1, page
    assert fake.aborted.wait(GUARD_S)  # the model's stream was closed
    assert "coffee" in second["heard"].lower(), page  # the interruption is the next turn
    assert second["answer"] == ANSWER and not second["interrupted"], page
    assert page["audioChunks"] >= 2  # the second answer was spoken too


def test_push_to_talk_hears_only_what_is_said_while_the_space_bar_is_held(collection, fake,
                                                                         speak, tmp_path):
    """The microphone plays two questions; the space bar is held only over the second.  The
    first must never reach the server (the page sends silence while the bar is up), and the
    release must end the turn."""
    fake.default = Step(text=ANSWER)
    unheld, held = speak(FIRST_QUESTION), speak(QUESTION)
    seconds = [len(clip) / SAMPLE_RATE for clip in (unheld, held)]
    mic = microphone(tmp_path / "push-to-talk.wav", unheld, silence(PUSH_GAP_S), held)
    with RunningServer(collection, llm_url=fake.url, api_key=KEY) as server, \
            Browser(mic, tmp_path / "profile") as browser:
        browser.open(f"{server.url}/?key={KEY}")
        browser.space(True)  # the first press opens the microphone and the session
        browser.wait_for("mic !== null && socket !== null && socket.ready === true", bool,
                         "the microphone open and the session ready")
        opened = time.monotonic()  # the recording started playing a little before this
        browser.space(False)
        # hold from the middle of the gap until well after the second question has ended
        time.sleep(max(0.0, opened + 1.0 + seconds[0] + PUSH_GAP_S / 2 - time.monotonic()))
        browser.space(True)
        time.sleep(PUSH_GAP_S / 2 + seconds[1] + 1.5)
        browser.space(False)
        page = browser.wait_for_page(answered(1), "the held question answered")
        time.sleep(1.0)  # a stray second turn would show up by now
        page = browser.page()
    assert len(page["turns"]) == 1, page
    heard = page["turns"][0]["heard"].lower()
    assert "coffee" in heard and "transistor" not in heard, page
    assert page["turns"][0]["answer"] == ANSWER, page


def test_the_bundled_local_model_answers_in_the_page(collection, local_llm, speak, tmp_path):
    mic = microphone(tmp_path / "question.wav", speak(QUESTION))
    with RunningServer(collection, llm_url=local_llm("smollm2"), llm_max_tokens=40,
                       api_key=KEY) as server, \
            Browser(mic, tmp_path / "profile") as browser:
        browser.open(f"{server.url}/?key={KEY}&auto=1")
        page = browser.wait_for_page(answered(1), "an answered turn")
    turn = page["turns"][0]
    assert "coffee" in turn["heard"].lower(), page
    assert turn["sources"] and turn["answer"].strip(), page
    assert not turn["notes"] and page["state"] != "error", page  # no failed turn, no error
