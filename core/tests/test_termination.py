import os
import signal
import threading

from core.termination import stop_on_termination


def test_sigterm_inside_sets_the_event_instead_of_killing_the_process():
    stop = threading.Event()
    with stop_on_termination(stop):
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.wait(5)


def test_sigint_inside_sets_the_event_too():
    stop = threading.Event()
    with stop_on_termination(stop):
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.wait(5)


def test_the_previous_handlers_come_back_on_exit_even_after_an_error():
    before = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    stop = threading.Event()
    try:
        with stop_on_termination(stop):
            assert signal.getsignal(signal.SIGTERM) is not before[signal.SIGTERM]
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert {signum: signal.getsignal(signum) for signum in before} == before


def test_outside_the_main_thread_nothing_is_installed():
    before = signal.getsignal(signal.SIGTERM)
    seen = []

    def worker():
        with stop_on_termination(threading.Event()):
            seen.append(signal.getsignal(signal.SIGTERM))

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(5)
    assert seen == [before]
