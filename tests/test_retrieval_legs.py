"""Which legs a question's readings search: the sound leg joins short questions only."""

import numpy as np
import pytest

from assistant.retrieval.retriever import Retriever
from assistant.retrieval.store.base import CHARS_VECTOR, SOUND_VECTOR

pytestmark = pytest.mark.slow


def legs_of(runtime, texts, **kwargs):
    retriever = Retriever(runtime)
    return {leg.using for leg in retriever.readings_legs(texts, np.ones(len(texts)), **kwargs)}


def test_sound_leg_joins_a_short_question_and_not_a_long_one(runtime):
    sounding = runtime.with_settings(sound_keys=True, sound_max_words=5)
    short, long = ["organ available to know"], ["oregon is a state of the pacific northwest"]
    assert {CHARS_VECTOR, SOUND_VECTOR} <= legs_of(sounding, short)
    assert SOUND_VECTOR not in legs_of(sounding, long)
    assert SOUND_VECTOR in legs_of(runtime.with_settings(sound_keys=True, sound_max_words=0),
                                   long)  # 0: any length
    # the length is the best reading's: a long second reading does not matter
    assert SOUND_VECTOR in legs_of(sounding, short + long)
    # legs without the error-tolerant ones (the hybrid's heard words) never get it
    assert SOUND_VECTOR not in legs_of(sounding, short, chars=False)
    assert SOUND_VECTOR not in legs_of(runtime.with_settings(sound_keys=False), short)
