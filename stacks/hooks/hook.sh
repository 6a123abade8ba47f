#!/bin/sh
# The local-exec command of every hook: `sh stacks/hooks/hook.sh <action>`, run from the
# project root with the resource's input in $EEV_HOOK_INPUT. The interpreter is
# $EEV_PYTHON if set, else python3 on PATH. (Kept out of the Terraform command itself: a
# shell `${...}` there needs Terraform's `$${` escape, which `cdktf synth --hcl` mangles.)
exec "${EEV_PYTHON:-python3}" -m stacks.hooks "$@"
