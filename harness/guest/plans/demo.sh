# SPDX-License-Identifier: GPL-2.0
# `make run`: the demonstration (ksmtest.acts= picks the acts; VMS=1 on
# the host adds the QEMU one).
RETRY=0
ksmt_run ksm_demo 1500 ksm_demo $(arg acts)
