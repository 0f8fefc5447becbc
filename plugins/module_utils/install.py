# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Install the DRS replication agent through SSM Run Command, and prove each install in DRS.

The public face of the ``_install`` package: its settings and their checks (``_install.options``), reading
Run Command (``_install.ssm``), one account-region's installs (``_install.engine``) and running several side
by side (``_install.follow``). Module ``drs_ssm_install`` installs in one account-region; the deploy action
(``drs_rollout``) in every account-region of a wave at once.
"""

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._install.engine import AWS_ERROR_MESSAGE
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._install.engine import AccountRegionInstall
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._install.engine import InstallRefused
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._install.engine import NOT_MANAGED_REASON
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._install.engine import error_code
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._install.engine import split_registered
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._install.engine import ssm_readiness
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._install.engine import tail
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._install.follow import MAX_THREADS
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._install.follow import Installs
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._install.follow import thread_pool
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._install.options import CROSS_ACCOUNT_DOCUMENT
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._install.options import INSTALL_DOCUMENTS
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._install.options import SAME_ACCOUNT_DOCUMENT
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._install.options import SETTINGS_SPEC
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._install.options import comment
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._install.options import format_tags
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._install.options import run_of_comment
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._install.options import send_batches
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._install.options import setting_errors
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._install.options import tag_errors

__all__ = (
    "AWS_ERROR_MESSAGE", "AccountRegionInstall", "CROSS_ACCOUNT_DOCUMENT", "INSTALL_DOCUMENTS", "InstallRefused",
    "Installs", "MAX_THREADS", "NOT_MANAGED_REASON", "SAME_ACCOUNT_DOCUMENT", "SETTINGS_SPEC", "comment", "error_code", "format_tags",
    "run_of_comment", "send_batches", "setting_errors", "split_registered", "ssm_readiness", "tag_errors", "tail",
    "thread_pool", "choose_document", "DocumentError",
)


class DocumentError(ValueError):
    """The install document cannot register agents where they must register."""


def choose_document(document_name, cross_account, staging_account_id):
    """The install document: the one given, or the default for same- or cross-account installs."""
    if document_name is None:
        return CROSS_ACCOUNT_DOCUMENT if cross_account else SAME_ACCOUNT_DOCUMENT
    if cross_account and document_name == SAME_ACCOUNT_DOCUMENT:
        raise DocumentError(f"{SAME_ACCOUNT_DOCUMENT} has no AccountId parameter and cannot register agents in "
                            f"staging account {staging_account_id}: leave document_name out to use "
                            f"{CROSS_ACCOUNT_DOCUMENT}")
    return document_name
