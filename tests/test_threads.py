"""Threads fitted to the machine's load (taller/threads.py): chosen once, checked in the first steps, never changed
from a thread other than the main one."""

import shutil
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from conftest import run_cli
from fastapi.testclient import TestClient

from taller import threads
from taller.apps.web.app import create_app
from taller.threads import Choice, StepCheck


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_a_request_or_the_environment_chooses_before_the_load(monkeypatch):
    assert threads.choose(3) == Choice(3, "3 hilos (--threads)", False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert threads.choose() == Choice(1, "1 hilo (OMP_NUM_THREADS)", False)


@pytest.mark.parametrize("busy, chosen", [(0.0, 2), (0.3, 2), (1.0, 1), (1.7, 1), (2.0, 1)])
def test_the_load_leaves_one_thread_per_free_core(monkeypatch, busy, chosen):
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(threads, "cores", lambda: 2)
    monkeypatch.setattr(threads, "others_busy", lambda: busy)
    choice = threads.choose()
    assert choice.threads == chosen and choice.automatic
    assert ("otros programas" in choice.why) == (chosen < 2)


def test_the_probe_counts_what_others_keep_busy_not_ourselves(monkeypatch):
    ticks = iter([(100, 1000), (100 + 40, 1000 + 40)])  # every tick of both cores busy during the probe
    monkeypatch.setattr(threads, "cpu_ticks", lambda: next(ticks))
    monkeypatch.setattr(threads, "cores", lambda: 2)
    monkeypatch.setattr(threads.time, "sleep", lambda s: None)
    clocks = iter([0.0, 0.2])  # perf_counter: start, end (the probe lasted 0.2 s)
    monkeypatch.setattr(threads.time, "perf_counter", lambda: next(clocks))
    cpu = iter([5.0, 5.2])  # our own process used one core all the while
    monkeypatch.setattr(threads.time, "process_time", lambda: next(cpu))
    assert threads.others_busy() == pytest.approx(1.0)


def steps(check: StepCheck, seconds_at) -> list[str]:
    """Feed the check steps whose duration depends on the threads torch computes with now; what it said."""
    said = []
    for _ in range(30):
        line = check.after_step(seconds_at[torch.get_num_threads()])
        said += [line] if line else []
    return said


def test_the_first_steps_keep_one_thread_when_it_is_faster(restore_threads):
    torch.set_num_threads(2)
    said = steps(StepCheck(Choice(2, "", True)), {2: 0.5, 1: 0.1})
    assert torch.get_num_threads() == 1
    assert len(said) == 1 and "Con 1 hilo los pasos van 5,0 veces más rápido que con 2" in said[0]


def test_the_first_steps_keep_both_threads_on_a_quiet_machine(restore_threads):
    torch.set_num_threads(2)
    assert steps(StepCheck(Choice(2, "", True)), {2: 0.1, 1: 0.19}) == []
    assert torch.get_num_threads() == 2


def test_steps_that_become_much_slower_step_down(restore_threads):
    torch.set_num_threads(2)
    check = StepCheck(Choice(2, "", True))
    steps(check, {2: 0.1, 1: 0.19})
    said = [line for line in (check.after_step(1.0) for _ in range(threads.SLOW_STEPS)) if line]
    assert torch.get_num_threads() == 1 and len(said) == 1 and "sigo con 1 hilo" in said[0]


def test_limited_gives_the_threads_back_and_does_nothing_outside_the_main_thread(restore_threads):
    torch.set_num_threads(2)
    with threads.limited(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    seen = []

    def request():
        with threads.limited(1):
            seen.append(torch.get_num_threads())

    worker = threading.Thread(target=request)
    worker.start()
    worker.join()
    assert seen != [1] and torch.get_num_threads() == 2


def threads_of_a_new_thread() -> int:
    """What a thread that has not computed yet starts with: the process-wide setting."""
    seen = []
    worker = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    worker.start()
    worker.join()
    return seen[0]


def test_the_server_keeps_its_threads_through_50_concurrent_samples(trained_run, tmp_path, restore_threads):
    root = tmp_path / "runs"
    shutil.copytree(trained_run.dir, root / "refranes")
    torch.set_num_threads(2)
    client = TestClient(create_app(root), base_url="http://127.0.0.1")
    body = {"run": "refranes", "text": "No hay ", "mode": "line", "temperature": 0.8}
    with ThreadPoolExecutor(8) as pool:  # the requests overlap in the server's pool of threads
        answers = list(pool.map(lambda _: client.post("/api/sample", json=body), range(50)))
    assert [a.status_code for a in answers] == [200] * 50
    assert all(a.json()["text"].startswith("No hay ") for a in answers)
    assert torch.get_num_threads() == 2 and threads_of_a_new_thread() == 2


@pytest.mark.parametrize(
    "given, said",
    [(["--threads", "1"], "Calculo con 1 hilo (--threads)."), ([], "Calculo con 2 hilos, uno por núcleo libre.")],
)
def test_a_training_says_in_one_line_how_many_threads_it_computes_with(
    corpus_file, tmp_path, capsys, monkeypatch, restore_threads, given, said
):
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(threads, "cores", lambda: 2)
    monkeypatch.setattr(threads, "others_busy", lambda: 0.0)  # a quiet machine, whatever runs beside the tests
    code, out, _ = run_cli(
        [
            "train",
            "--corpus",
            str(corpus_file),
            "--out",
            str(tmp_path / "run"),
            "--steps",
            "2",
            "--set",
            "d_model=16",
            "--set",
            "n_layers=1",
            "--set",
            "n_heads=2",
            "--set",
            "d_ff=32",
            "--set",
            "block_size=16",
            "--set",
            "batch_size=4",
            "--set",
            "samples=0",
            "--set",
            "plot_every=0",
            "--quiet",
            *given,
        ],
        capsys,
    )
    assert code == 0 and said in out.splitlines()
    assert torch.get_num_threads() == (1 if given else 2)
