"""Run one seed example as its users would, with what a fragment assumes.

    run_example.py EXAMPLE.py [--function NAME] [--fake-gib N] [--ctx N MAX]

--function NAME  the example is the body of a function (it `return`s): run
                 it as that function's body
--fake-gib N     pretend the effective memory is N GiB (to reach the
                 example's refusal branch on any machine)
--ctx N MAX      give the example a `ctx`: an ExecutionContext with MAX
                 max_messages holding N messages
Logging goes to stderr at INFO; at the end the soft RLIMIT_DATA is printed
("RLIMIT_DATA=<bytes or unlimited>"), or "RAISED <type>: <message> <attrs>"
when the example raised.
"""
import argparse
import logging
import os
import resource
import sys
import textwrap

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)  # the tinyllm stand-in

ap = argparse.ArgumentParser()
ap.add_argument("example")
ap.add_argument("--function")
ap.add_argument("--fake-gib", type=float)
ap.add_argument("--ctx", nargs=2, type=int)
opt = ap.parse_args()

logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s: %(message)s")

if opt.fake_gib is not None:
    import mgrun.memory_limit

    mgrun.memory_limit.effective_memory = lambda: int(opt.fake_gib * (1 << 30))

code = open(os.path.join(here, opt.example)).read()
if opt.function:
    lines = code.splitlines()
    imports = [x for x in lines if x.startswith(("from ", "import "))]
    body = [x for x in lines if not x.startswith(("from ", "import "))]
    code = "\n".join(imports) + f"\ndef {opt.function}():\n" + textwrap.indent("\n".join(body), "    ") + \
        f"\n{opt.function}()\n"

env = {"__name__": "__main__", "args": argparse.Namespace(ram_limit=2.0), "logger": logging.getLogger("example")}
if opt.ctx:
    from mgrun.context import ExecutionContext

    ctx = ExecutionContext(trace_id="trace-123", graph_id="my-graph", max_messages=opt.ctx[1])
    for i in range(opt.ctx[0]):
        ctx.add_message(f"message {i}")
    env["ctx"] = ctx
try:
    exec(compile(code, opt.example, "exec"), env)
except SystemExit as e:
    print(f"EXIT {e.code}")
except BaseException as e:  # noqa: B902
    attrs = {k: getattr(e, k) for k in ("limit_type", "current_value", "limit_value", "details", "code")
             if hasattr(e, k)}
    print(f"RAISED {type(e).__name__}: {e} {attrs}")
soft = resource.getrlimit(resource.RLIMIT_DATA)[0]
print("RLIMIT_DATA=" + ("unlimited" if soft == resource.RLIM_INFINITY else str(soft)))
if opt.ctx:
    print(f"CTX {len(env['ctx'])}")
