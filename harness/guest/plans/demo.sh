# SPDX-License-Identifier: GPL-2.0
# `make run`: the demonstration.
RETRY=0
ksmt_run ksm_demo 900 ksm_demo
