"""The notebook path of the README: a few lines of Python do what the command line does."""

import taller
from taller.inspect import parameter_table


def test_the_readme_notebook_example(tmp_path, corpus_file):
    corpus = taller.load_corpus(str(corpus_file))
    assert corpus.lines and "No hay" in corpus.text
    cfg = taller.preset(
        "base",
        corpus=str(corpus_file),
        d_model=32,
        n_heads=2,
        n_layers=1,
        d_ff=64,
        block_size=16,
        batch_size=8,
        max_steps=30,
        plot_every=0,
        eval_chars=200,
        samples=2,
    )
    run = taller.train(cfg, tmp_path / "mi-modelo", progress=False)
    samples = run.generate("No hay ", n=3, seed=0)
    assert len(samples) == 3 and all(s.text.startswith("No hay ") for s in samples)
    assert all(len(step.top) == 5 for step in samples[0].steps)
    assert "Total:" in parameter_table(run.model)
    again = taller.load_run(tmp_path / "mi-modelo")
    assert [s.text for s in again.generate("No hay ", n=3, seed=0)] == [s.text for s in samples]
