# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The resumable ``next_token`` of history queries: which filters, and where each Query stands."""

import base64
import binascii
import hashlib
import json

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history.items import HistoryInputError

TOKEN_VERSION = 2
FINGERPRINT_KEYS = ("table_name", "deployment_id", "account_id", "status", "deployment_pattern", "since", "until",
                    "failures_only", "record_type")


def fingerprint(params):
    text = json.dumps({key: str(params.get(key)) for key in FINGERPRINT_KEYS}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def encode_token(fingerprint_value, cursors):
    """Each Query's cursor: None (not begun), "done", or the typed key of its last returned item."""
    document = {"v": TOKEN_VERSION, "f": fingerprint_value, "c": cursors}
    return base64.urlsafe_b64encode(json.dumps(document, sort_keys=True, separators=(",", ":")).encode()).decode()


def decode_token(token, query_count, fingerprint_value=None):
    try:
        document = json.loads(base64.urlsafe_b64decode(token.encode()).decode())
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise HistoryInputError("next_token is not a token returned by drs_history_info") from None
    if not isinstance(document, dict) or document.get("v") != TOKEN_VERSION or not isinstance(document.get("c"), list) \
            or len(document["c"]) != query_count:
        raise HistoryInputError("next_token is not a token returned by drs_history_info for these filters")
    if fingerprint_value is not None and document.get("f") != fingerprint_value:
        raise HistoryInputError("next_token was returned for other filters: give the same filters as the call that "
                                "returned it")
    return document["c"]
