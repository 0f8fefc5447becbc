"""python -m lab serve --scenario lab/scenarios/demo.yml [--port N]
python -m lab measure --scenario lab/scenarios/scale.yml"""

import argparse
import resource
import sys
import time

from lab.scenario import ScenarioError, load_scenario


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m lab", description="A local AWS lab for DRS agent deployment.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve a scenario until interrupted")
    serve.add_argument("--scenario", required=True, help="scenario file, or the name of one in lab/scenarios/")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0, help="0 picks a free port (printed in the ready line)")
    measure = commands.add_parser("measure", help="seed a scenario in-process and report the time and memory it takes")
    measure.add_argument("--scenario", required=True, help="scenario file, or the name of one in lab/scenarios/")
    measure.add_argument("--idle-seconds", type=float, default=3.0, help="how long to stay idle before reading memory")
    args = parser.parse_args(argv)
    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as exc:
        print(f"lab: {exc}", file=sys.stderr)
        return 2
    if args.command == "measure":
        return _measure(scenario, args.idle_seconds)
    return _serve(scenario, args.host, args.port)


def _serve(scenario, host, port):
    from lab.server import LabServer  # moto is heavy to import: only once the scenario is known good

    server = LabServer(scenario, host=host, port=port)
    print(f"lab ready: {server.url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


def _measure(scenario, idle_seconds):
    from lab.server import LabApplication

    started = time.perf_counter()
    app = LabApplication(scenario)
    seconds = time.perf_counter() - started
    summary = app.world.summary()
    print(f"seeded {summary['instances']} instances over {len(summary['instances_by_account_region'])} account-regions "
          f"in {seconds:.1f} s", flush=True)
    time.sleep(idle_seconds)
    print(f"resident memory: {_resident_megabytes():.0f} MB", flush=True)
    return 0


def _resident_megabytes():
    """Current resident set size (VmRSS) where /proc exists, else the peak the kernel reports."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


if __name__ == "__main__":
    sys.exit(main())
