# SPDX-License-Identifier: GPL-2.0
# `make test`: the conformance suite, then a short torture slice. A torture
# failure is never retried: one lost byte is a failure, not a flake.
. /plans/conformance.sh
RETRY=0
ksmt_run ksm_torture $(( ${DURATION:-120} * 3 + 300 )) ksm_torture -d "${DURATION:-120}" -s "${SEED:-0}" $TORTURE_OPTS
