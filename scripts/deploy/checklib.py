"""Shared machinery of the deployment checks: the check decorator, results,
failures and skips, and paths (used by check.py and containers.py)."""

import os
import shutil
import sys
import time
import traceback


ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.path.join(os.path.expanduser("~"), ".cache", "coffer")

RESULTS = []


def check(name):
    def wrap(fn):
        def run(*args, **kwargs):
            started = time.monotonic()
            try:
                detail = fn(*args, **kwargs)
            except Skip as skip:
                RESULTS.append(("skip", name))
                print(f"SKIP  {name}: {skip}")
                return None
            except Failure as failure:
                RESULTS.append(("fail", name))
                print(f"FAIL  {name}")
                for line in str(failure).splitlines():
                    print(f"      {line}")
                return None
            except Exception:  # a bug in a check is a failure too
                RESULTS.append(("fail", name))
                print(f"FAIL  {name}: unexpected error")
                print(traceback.format_exc())
                return None
            took = time.monotonic() - started
            RESULTS.append(("pass", name))
            suffix = f" ({detail})" if detail else ""
            print(f"ok    {name}{suffix} [{took:.1f}s]")
            return True
        return run
    return wrap


class Failure(Exception):
    pass


class Skip(Exception):
    pass


def fail_if(problems):
    if problems:
        raise Failure("\n".join(problems))


def venv_bin(name):
    candidate = os.path.join(os.path.dirname(sys.executable), name)
    return candidate if os.path.exists(candidate) else shutil.which(name)
