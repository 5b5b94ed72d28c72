"""The context-mixing parts (models/cm/), each on a tiny text, and the codec's exact round trip."""

import numpy as np
import pytest

from taller.arithmetic import Decoder, Encoder
from taller.models.cm.codec import Coding, alphabet, decode, encode
from taller.models.cm.contexts import Words, order_keys, order_keys_now, powers, word_keys
from taller.models.cm.counts import Counts
from taller.models.cm.match import MIN_MATCH, Match
from taller.models.cm.mixer import Mixer
from taller.models.cm.orders import STATES, OrderModels, state_of
from taller.models.cm.predictor import Settings
from taller.models.cm.sse import APM

TRAIN = "En un lugar de la Mancha, de cuyo nombre no quiero acordarme, vivía un hidalgo.\n" * 4
SMALL = Settings(warm=40)


def test_keys_at_once_and_one_at_a_time_agree():
    ids = np.random.default_rng(0).integers(0, 7, 200)
    for order in (1, 3, 8, 12):  # 12: past 54 bits, folded
        at_once = order_keys(ids, order, 8)
        now = [order_keys_now(ids[:t].tolist(), order, powers(8, order))[-1] for t in range(len(ids))]
        assert at_once.tolist() == now
    assert len(set(order_keys(ids, 3, 8).tolist())) <= 7**3 + 7**2 + 7 + 1


def test_word_keys_follow_the_words():
    letters = np.array([True, True, False])  # a, b, space
    ids = np.array([0, 1, 2, 0, 1, 2, 0, 1])  # "ab ab ab"
    now, pair, words = word_keys(ids, letters)
    assert now[1] == now[4] == now[7]  # "a" read, in every word
    assert pair[4] == pair[7] and pair[1] != pair[4]  # the first word has no previous one
    step = Words(letters)
    for symbol in ids.tolist():
        step.push(symbol)
    assert step.keys() == words.keys()


def test_counts_read_the_text_and_halve_past_the_limit():
    keys, ids = np.array([5, 5, 5, 9]), np.array([1, 1, 2, 0])
    counts = Counts(keys, ids, V=3, limit=4.0)
    assert counts(5).tolist() == [0, 2, 1] and counts(9).tolist() == [1, 0, 0] and counts(7).tolist() == [0, 0, 0]
    counts.learn(5, 0)
    assert counts(5).tolist() == [1, 2, 1]
    counts.learn(5, 0)  # total 5 > 4: halved
    assert counts(5).tolist() == [1.0, 1.0, 0.5]
    assert Counts(np.array([1] * 10), np.zeros(10, np.int64), 2, limit=4.0)(1).tolist() == [4.0, 0.0]


def test_smoothing_leans_on_the_lower_order():
    lower = np.array([0.5, 0.25, 0.25])
    models = OrderModels([Counts(np.zeros(1, np.int64), np.zeros(1, np.int64), 3, 256.0)], [], 3)  # c = 1: Witten–Bell
    assert models.one(0, np.zeros(3), lower)[0] is lower  # an unseen context passes it on
    p, total, state = models.one(0, np.array([3.0, 0.0, 1.0]), lower)  # N = 4, d = 2 followers
    assert total == 4.0 and state == state_of(4.0, 2.0) and p.sum() == pytest.approx(1.0)
    assert p.tolist() == pytest.approx([(3 + 2 * 0.5) / 6, (2 * 0.25) / 6, (1 + 2 * 0.25) / 6])


def test_the_match_predicts_what_followed_the_repeat():
    text = np.array([0, 1, 2, 3, 4, 5, 6, 0, 1, 2, 3, 4, 5, 6, 0, 1, 2, 3, 4, 5])
    V, base, n = 7, 8, 13
    history = np.zeros(len(text) + 1, np.int64)
    history[:n] = text[:n]
    match = Match(history, order_keys(text[:n], MIN_MATCH, base), n, V)
    for t in range(n, len(text)):
        history[t] = text[t]
        key = order_keys_now(text[: t + 1].tolist(), MIN_MATCH, powers(base, MIN_MATCH))[-1]
        match.learn(int(text[t]), t, key)
    assert match.length[0] > MIN_MATCH and match.expected() == 6  # «0 1 2 3 4 5» was followed by 6
    p = match.predict()
    assert p.argmax() == 6 and p.sum() == pytest.approx(1.0) and p[6] > 2 * p[0]


def test_the_mixer_learns_to_trust_the_input_that_is_right():
    right, wrong = np.array([0.6, 0.2, 0.2]), np.array([0.2, 0.6, 0.2])
    mixer = Mixer(inputs=2, contexts=1, rate=0.1, start=0.5)
    before = mixer.mix(np.stack([right, wrong]), 0)[0]
    for _ in range(50):
        mixer.mix(np.stack([right, wrong]), 0)
        mixer.learn(0)
    after = mixer.mix(np.stack([right, wrong]), 0)
    assert after[0] > before and after[0] > 0.6 and mixer.weights[0, 0] > mixer.weights[0, 1]
    assert after.sum() == pytest.approx(1.0)


def test_the_mixer_trusts_an_input_by_its_state_and_new_rows_learn_faster():
    right, wrong = np.array([0.6, 0.2, 0.2]), np.array([0.2, 0.6, 0.2])
    mixer = Mixer(inputs=2, contexts=1, rate=0.0, start=0.5, states=2, state_rate=0.1)
    for t in range(100):  # input 0 says state 1 when it is right, state 0 when it is wrong
        sure = t % 2
        mixer.mix(np.stack([right, wrong]), 0, np.array([sure, 0]))
        mixer.learn(0 if sure else 1)
    assert mixer.confidence[0, 1] > 0.5 and mixer.confidence[0, 0] < -0.5  # the row (rate 0) stays where it was
    assert mixer.weights.tolist() == [[0.5, 0.5]]
    steps = []
    for boost in (0.0, 4.0):
        boosted = Mixer(inputs=2, contexts=1, rate=0.01, start=0.5, boost=boost)
        boosted.mix(np.stack([right, wrong]), 0)
        boosted.learn(0)
        steps.append(boosted.weights[0, 0] - 0.5)
    assert steps[1] == pytest.approx(5 * steps[0]) and steps[0] > 0


def test_a_model_learns_how_far_to_trust_its_counts():
    counts = Counts(np.array([7] * 6), np.array([1] * 6), V=3, limit=256.0)  # context 7: six times symbol 1
    models = OrderModels([counts], [], 3, escape_rate=0.05)
    before = models.predict([7], [])[0][0, 1]
    for _ in range(20):
        models.predict([7], [])
        models.learn([7], [], 1)
    after = models.predict([7], [])[0][0, 1]
    plain = OrderModels([Counts(np.array([7] * 26), np.array([1] * 26), 3, 256.0)], [], 3).predict([7], [])
    assert after > plain[0][0, 1] > before  # more than Witten–Bell's (26 + 1/3) / 27: its escape shrank
    assert models.log_c[0][state_of(26.0, 1.0)] < 0 and max(map(max, models.log_c)) == 0.0
    assert plain[2] == [state_of(26.0, 1.0)] == [2 * 5 + 1] and STATES == 20


def test_the_apm_corrects_a_mixer_that_is_too_unsure():
    apm = APM(contexts=1, rate=0.05, share=1.0)
    p = np.array([0.5, 0.25, 0.25])
    assert apm.refine(p, 0).tolist() == pytest.approx(p.tolist(), abs=0.01)  # it starts near the identity
    for _ in range(200):
        apm.refine(p, 0)
        apm.learn(0)  # the first symbol always comes
    assert apm.refine(p, 0)[0] > 0.8


@pytest.mark.parametrize(
    "text",
    [
        "de la Mancha, de la Mancha, de la Mancha, de la Mancha",  # repeats: the match runs
        "\ufeffEn un lugar\r\nde la Mancha\r\n",  # a BOM and CRLF, never in the training text
        "Zoé: ¡ñandú! 北京 €",  # characters the training text never had
        "",
        "a",
    ],
)
def test_the_codec_gives_back_the_text(text):
    data, ideal = encode(TRAIN, text, SMALL)
    assert decode(TRAIN, data, len(text), SMALL) == text
    assert ideal >= 0 and (len(data) <= 2 or 8 * len(data) <= ideal + 64)


def test_counting_helps_and_the_parts_add_up():
    text = "En un lugar de la Mancha, de cuyo nombre no quiero acordarme.\n"
    full = len(encode(TRAIN, text, SMALL)[0])
    assert full * 8 / len(text) < 2.0  # it has read it four times
    assert len(encode("", text, SMALL)[0]) > full  # without the training text, more bytes
    assert alphabet("aab") == "ab"
    assert decode("", encode("", "xyz")[0], 3) == "xyz"  # no training text: every character escaped


def test_a_code_point_no_text_holds_reads_as_the_replacement_character():
    coding = Coding("abc abc", 4, Settings())
    p = np.full(coding.V, 1.0 / coding.V)  # (V,)
    encoder = Encoder()
    for c in ("a", "\ud800", "é"):  # a surrogate only a damaged or crafted file carries
        coding.write(encoder, p, coding.index.get(c, coding.escape), c)
    decoder = Decoder(encoder.finish())
    assert [coding.read(decoder, p)[1] for _ in range(3)] == ["a", "\ufffd", "é"]
