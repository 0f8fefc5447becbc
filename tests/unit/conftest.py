"""Make the repository importable as ansible_collections.drs_orchestration.agent_deployer.

``ansible_collections`` is a namespace package (the installed collections in site-packages have no
``__init__.py`` at that level), so a second root holding ``ansible_collections/drs_orchestration/
agent_deployer`` (a link to the repository) joins it: this collection and amazon.aws import side by
side. The link lives in a temporary directory for the test run, never in the repository.
"""

import atexit
import shutil
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def _link_collection():
    root = Path(tempfile.mkdtemp(prefix="collection-root-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    namespace = root / "ansible_collections" / "drs_orchestration"
    namespace.mkdir(parents=True)
    (namespace / "agent_deployer").symlink_to(REPO_ROOT, target_is_directory=True)
    sys.path.insert(0, str(root))


_link_collection()
