"""What the radvlm-verl plugin adds to ``import verl``, which runs in every verl process.

Times ``python -c "import verl"`` in fresh interpreters, alternating plugins on (the default) and off
(``VERL_USE_EXTERNAL_PLUGINS=none``), and prints the medians and their difference. Alternating keeps
both sides under the same machine load.

    python benchmarks/plugin_import.py --repeats 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

PROBE = "import verl, sys; assert 'radvlm_verl.integration.plugin' in sys.modules or {off}"


def time_import(plugins: bool) -> float:
    env = dict(os.environ)
    if plugins:
        env.pop("VERL_USE_EXTERNAL_PLUGINS", None)
    else:
        env["VERL_USE_EXTERNAL_PLUGINS"] = "none"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", PROBE.format(off=not plugins)], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    time_import(True)  # warm the file cache for both sides
    on, off = [], []
    for _ in range(args.repeats):
        on.append(time_import(True))
        off.append(time_import(False))
    m_on, m_off = statistics.median(on), statistics.median(off)
    print(f"import verl, plugin on : median {m_on:.2f} s  ({', '.join(f'{t:.2f}' for t in on)})")
    print(f"import verl, plugin off: median {m_off:.2f} s  ({', '.join(f'{t:.2f}' for t in off)})")
    print(f"plugin overhead: {m_on - m_off:+.2f} s (ratio {m_on / m_off:.2f}); target < 0.3 s")


if __name__ == "__main__":
    main()
