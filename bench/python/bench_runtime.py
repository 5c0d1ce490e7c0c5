#!/usr/bin/python3
"""bench_runtime.py — what mgrun.Runtime costs an idle Python host, as
markdown rows (what | figure | target) for bench/run.sh.

    MGRUN_LIB=BUILD/libmg.so.0 PYTHONPATH=bindings/python /usr/bin/python3 bench/python/bench_runtime.py

Two fresh interpreters side by side for the same 10 s: one imports mgrun
and loads both libraries, then sleeps; the other does the same and runs a
policy with a 1 s timer (mgrun.Runtime, its loop on a background thread).
The rows are the differences: resident memory (VmRSS at the end) and CPU
(utime + stime from /proc/PID/stat over the 10 s). Also: a host thread's
add to a policy's store whose strategy is a Lua function (queued for the
policy's thread), adds per second.
"""
import os
import subprocess
import sys
import tempfile
import time

SECONDS = 10
CHILD = r"""
import sys, time, mgrun
from mgrun import _lib
_lib.core(); _lib.runtime()
rt = None
if sys.argv[1] == "runtime":
    rt = mgrun.Runtime(sys.argv[2], log_level="error").start()
print("ready", flush=True)
time.sleep(float(sys.argv[3]))
"""
POLICY = "local n = 0\nmg.every(1000, function() n = n + 1 end)\n"
ADD_POLICY = """
local ctx = assert(mg.store { name = 'ctx', max_messages = 1000, on_full = 'prune',
  strategy = function(view, need)
    local ids = {}
    for m in view:messages() do
      if #ids >= need.count then break end
      ids[#ids + 1] = m.id
    end
    return ids
  end })
mg.every(1000, function() end)
"""


def proc_cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def measure(policy):
    procs = {}
    for mode in ("idle", "runtime"):
        p = subprocess.Popen([sys.executable, "-c", CHILD, mode, policy, str(SECONDS + 5)],
                             stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == "ready"
        procs[mode] = p
    start = {m: proc_cpu_s(p.pid) for m, p in procs.items()}
    time.sleep(SECONDS)
    out = {m: (proc_rss(p.pid), proc_cpu_s(p.pid) - start[m]) for m, p in procs.items()}
    for p in procs.values():
        p.kill()
        p.wait()
    return out


def add_rate(policy):
    import mgrun

    with mgrun.Runtime(policy, log_level="error") as rt:
        ctx = rt.store("ctx")
        n = 20_000
        payload = "x" * 256
        t = time.perf_counter()
        for _ in range(n):
            ctx.add("user", payload)
        return n / (time.perf_counter() - t)


def main():
    with tempfile.TemporaryDirectory() as d:
        policy = os.path.join(d, "idle.lua")
        with open(policy, "w") as f:
            f.write(POLICY)
        m = measure(policy)
        add_policy = os.path.join(d, "add.lua")
        with open(add_policy, "w") as f:
            f.write(ADD_POLICY)
        rate = add_rate(add_policy)
    rss = m["runtime"][0] - m["idle"][0]
    cpu = (m["runtime"][1] - m["idle"][1]) / SECONDS * 100
    print(f"| Python `Runtime` + a policy with a 1 s timer on an idle host: RSS added "
          f"(host alone {m['idle'][0] / 2**20:.2f} MiB, with it {m['runtime'][0] / 2**20:.2f} MiB) "
          f"| {rss / 2**20:.2f} MiB | — |")
    print(f"| the same: CPU added over {SECONDS} s | {max(cpu, 0):.3f} % | — |")
    print(f"| host thread's `PolicyStore.add` (256 B) to a store with a Lua strategy, at its limit "
          f"(each add queued for the policy's thread) | {rate / 1000:.1f} k adds/s | — |")


if __name__ == "__main__":
    main()
