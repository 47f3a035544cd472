"""A local sweep run stops (SIGTERM: checkpoint and exit) when the driver that started it dies."""

import os
import signal
import subprocess
import sys
import time

import pytest

PROGRAM = """
import multiprocessing, sys, time

def run(conn):
    from bptrain.sweep.worker import stop_with_parent
    import os
    stop_with_parent()
    conn.send(os.getpid())
    time.sleep(30)

if __name__ == "__main__":
    ctx = multiprocessing.get_context("forkserver")
    a, b = ctx.Pipe()
    ctx.Process(target=run, args=(b,)).start()
    print(a.recv(), flush=True)
    time.sleep(30)
"""


@pytest.mark.timeout(60)
def test_run_gets_sigterm_when_the_driver_dies(tmp_path):
    script = tmp_path / "driver.py"
    script.write_text(PROGRAM)
    driver = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    run = int(driver.stdout.readline())
    driver.kill()  # SIGKILL: no chance to stop its runs itself
    driver.wait()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{run}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return  # ended, waiting to be reaped
        except FileNotFoundError:
            return  # ended and reaped
        time.sleep(0.05)
    os.kill(run, signal.SIGKILL)
    pytest.fail("the run kept going after its driver died")
