"""Context mixing (CM): counting done well, as the best compressors do it, written to be read.

A CM compressor reads the text once, character by character. Before each character several small models each give
a distribution over the alphabet; a mixer that learns while it reads combines them; an SSE stage corrects the mixed
probabilities; the arithmetic coder spends −log2 p bits on the character that comes; then every part learns from it.
The decoder does the same steps with the same numbers, so it has the same probabilities at every character.

    contexts.py  the contexts as 64-bit keys: the last k characters (orders 1–8), the current and previous word
    counts.py    per-context counts, read from the training text at once (np.unique) and updated while reading
    orders.py    the order models and the word models: counts smoothed into distributions (Witten–Bell, with an
                 escape learnt per model and count state)
    match.py     the match model: the longest earlier repeat of the last characters predicts what followed it
    mixer.py     the online mixer: logistic mixing in the log domain, weights chosen by a small context and by how
                 sure each input says it is
    sse.py       secondary estimation (an APM): the mixed probabilities corrected by what they turned out to be
    predictor.py all of them, one character at a time: predict() then learn(symbol)
    codec.py     the predictor and the arithmetic coder: a text (given the training text) as bytes, and back
"""
