"""python -m lab serve --scenario lab/scenarios/demo.yml [--port N]"""

import argparse
import sys

from lab.scenario import ScenarioError, load_scenario


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m lab", description="A local AWS lab for DRS agent deployment.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve a scenario until interrupted")
    serve.add_argument("--scenario", required=True, help="scenario file, or the name of one in lab/scenarios/")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0, help="0 picks a free port (printed in the ready line)")
    args = parser.parse_args(argv)
    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as exc:
        print(f"lab: {exc}", file=sys.stderr)
        return 2
    from lab.server import LabServer  # moto is heavy to import: only once the scenario is known good

    server = LabServer(scenario, host=args.host, port=args.port)
    print(f"lab ready: {server.url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
