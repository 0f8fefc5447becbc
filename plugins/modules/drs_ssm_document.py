#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: drs_ssm_document
short_description: Create or update an SSM Command document, such as the collection's agent install document
version_added: 0.1.0
description:
  - Creates the SSM Command document I(name) with I(content) in one account and region if it does not exist.
  - If it exists and its default version has other content, adds I(content) as a new version (C(UpdateDocument)
    on C($LATEST)) and makes that version the default (C(UpdateDocumentDefaultVersion)).
  - Contents are compared as data, not as text, so a change of layout or comments alone is not a change.
  - Reports C(changed=false) when the default version already has I(content).
  - In check mode only reads the document and reports what it would do; with C(--diff) it shows the
    default version's content before and after.
author:
  - DRS orchestration contributors (@drs-orchestration)
options:
  name:
    description:
      - The document name, 3 to 128 letters, digits, C(_), C(-) or C(.); it cannot start with C(aws), C(amazon)
        or C(amzn).
    type: str
    required: true
  content:
    description:
      - The document content, for example from C(lookup('ansible.builtin.file', ...)).
      - A Command document with C(schemaVersion), C(parameters) and C(mainSteps).
    type: str
    required: true
  document_format:
    description:
      - The format of I(content).
    type: str
    choices: [YAML, JSON]
    default: YAML
requirements:
  - PyYAML
notes:
  - The caller needs C(ssm:DescribeDocument), C(ssm:GetDocument), C(ssm:CreateDocument), C(ssm:UpdateDocument) and
    C(ssm:UpdateDocumentDefaultVersion) on the document.
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Create or update the collection's install document in a source account
  drs_orchestration.agent_deployer.drs_ssm_document:
    name: DRSOrchestration-InstallDRAgentCrossAccount
    content: "{{ lookup('ansible.builtin.file', 'DRSOrchestration-InstallDRAgentCrossAccount.yml') }}"
    region: us-east-1
"""

RETURN = r"""
document:
  description:
    - The document as DescribeDocument returns it after the change.
    - Empty in check mode when the document would be created.
  returned: always
  type: dict
  contains:
    name:
      description: The document name.
      type: str
      sample: DRSOrchestration-InstallDRAgentCrossAccount
    document_type:
      description: The document type.
      type: str
      sample: Command
    document_format:
      description: The format the document was created in.
      type: str
      sample: YAML
    default_version:
      description: The version SendCommand runs when no version is given.
      type: str
      sample: "2"
    latest_version:
      description: The newest version.
      type: str
      sample: "2"
    status:
      description: The document status.
      type: str
      sample: Active
    parameters:
      description: The parameters the document defines (name, type, description, default value).
      type: list
      elements: dict
    platform_types:
      description: The platforms the document runs on.
      type: list
      elements: str
      sample: [Windows, Linux]
"""

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible.module_utils.basic import missing_required_lib
from ansible.module_utils.common.dict_transformations import camel_dict_to_snake_dict

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.aws import RETRY
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.drs_setup import (
    HAS_YAML,
    SetupInputError,
    check_document_input,
    ensure_document,
)

try:
    import botocore
except ImportError:
    pass  # AnsibleAWSModule reports a missing botocore


def main():
    argument_spec = dict(
        name=dict(type="str", required=True),
        content=dict(type="str", required=True),
        document_format=dict(type="str", choices=["YAML", "JSON"], default="YAML"),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    if not HAS_YAML:
        module.fail_json(msg=missing_required_lib("PyYAML"))
    name, content, document_format = (module.params[key] for key in ("name", "content", "document_format"))
    try:
        check_document_input(name, content, document_format)
    except SetupInputError as error:
        module.fail_json(msg=str(error))

    ssm = module.client("ssm", retry_decorator=RETRY)
    try:
        changed, document, diff = ensure_document(ssm, name, content, document_format, module.check_mode)
    except SetupInputError as error:
        module.fail_json(msg=str(error))
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
        module.fail_json_aws(
            error,
            msg=f"Failed to create or update the SSM document {name}: check that the role may call ssm:DescribeDocument, "
            "GetDocument, CreateDocument, UpdateDocument and UpdateDocumentDefaultVersion on it",
        )
    result = dict(changed=changed, document=camel_dict_to_snake_dict(document))
    if module._diff and diff:
        result["diff"] = diff
    module.exit_json(**result)


if __name__ == "__main__":
    main()
