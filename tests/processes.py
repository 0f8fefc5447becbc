"""The processes a test or a benchmark started, as /proc shows them (Linux)."""

from pathlib import Path


def running_children(parent_pid, name):
    """The pids of ``parent_pid``'s child processes whose command line holds ``name``."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
            command = (status.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if fields.get("PPid", "").strip() == str(parent_pid) and name in command:
            found.append(int(status.parent.name))
    return found
