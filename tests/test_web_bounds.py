"""The explorer stays small: at most KEEP runs loaded (apps/web/runs.py), a surprise map scores its windows a few
at a time (inspect/surprise.py: LOGITS_HELD), and what the library refuses while answering is a 4xx, not a 500."""

import pytest
from conftest import PROVERBS
from fastapi.testclient import TestClient

import taller.inspect.surprise as surprise_module
from taller.apps.web.app import create_app
from taller.apps.web.runs import KEEP, RunCache
from taller.inspect.surprise import known_text, surprise
from taller.runs.folder import load_run


def run_folders(root, n):
    for i in range(n):
        (root / f"r{i}").mkdir()
        (root / f"r{i}" / "state.json").write_text("{}", encoding="utf-8")


def test_one_run_more_than_keep_lets_go_of_the_one_used_longest_ago(tmp_path):
    run_folders(tmp_path, KEEP + 1)
    opened = []
    cache = RunCache(tmp_path, lambda path: opened.append(path.name) or object())
    first = cache.get("r0")
    for i in range(1, KEEP):
        cache.get(f"r{i}")
    assert cache.get("r0") is first and opened == [f"r{i}" for i in range(KEEP)]  # kept: not opened again
    cache.get(f"r{KEEP}")  # one run more than KEEP
    assert len(cache.loaded) == KEEP
    assert "r1" not in cache.loaded and "r0" in cache.loaded  # r0 was used after r1
    cache.get("r1")
    assert opened[-1] == "r1" and len(opened) == KEEP + 2 and len(cache.loaded) == KEEP  # let go: opened again


def test_a_surprise_map_holds_at_most_LOGITS_HELD_logits_and_pays_the_same_bits(trained_run, monkeypatch):
    run = load_run(trained_run.dir)  # its own copy: the hook below never touches the shared run
    text = known_text(" ".join(PROVERBS), [run], "replace")
    whole = surprise(run, text).bits
    width, vocab = run.config.model.block_size + 1, run.tokenizer.vocab_size  # a window's ids, the logits per id
    monkeypatch.setattr(surprise_module, "LOGITS_HELD", 3 * width * vocab)
    batches = []
    handle = run.model.register_forward_pre_hook(lambda module, args: batches.append(args[0].shape[0]))
    try:
        small = surprise(run, text).bits
    finally:
        handle.remove()
    assert max(batches) == 3 and len(batches) >= 3  # three windows at a time, never more
    assert whole[0] is None and small[0] is None
    assert small[1:] == pytest.approx(whole[1:], rel=1e-5, abs=1e-6)


def test_a_taller_error_while_answering_is_a_400_with_its_one_line(trained_run):
    client = TestClient(create_app(trained_run.dir), base_url="http://127.0.0.1")
    response = client.post("/api/surprise", json={"run": trained_run.dir.name, "text": "N"})
    error = response.json()["error"]
    assert response.status_code == 400 and error.startswith("el texto es demasiado corto") and "\n" not in error
