# SPDX-License-Identifier: GPL-2.0
# `make stress`: the torture program alone, for DURATION seconds.
RETRY=0
ksmt_run ksm_torture $(( ${DURATION:-600} * 3 + 300 )) ksm_torture -d "${DURATION:-600}" -s "${SEED:-0}" ${SCEN:+-o "$SCEN"} ${OPSOFF:+-x "$OPSOFF"} $TORTURE_OPTS
ksmt_run ksm_badinput 300 ksm_badinput
