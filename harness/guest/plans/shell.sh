# SPDX-License-Identifier: GPL-2.0
# `make shell`: an interactive shell on the serial console.
echo "KSM guest shell: tests in /tests, knobs in $KSM; exit or Ctrl-D powers off."
setsid cttyhack sh -l
