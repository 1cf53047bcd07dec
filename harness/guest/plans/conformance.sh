# SPDX-License-Identifier: GPL-2.0
# The upstream KSM selftests in every mode run_vmtests.sh runs (plus -D and
# -C), then our own selftests (every /tests/ksm_* except the torture program).
ksmt_run ksm_tests-M 600 ksm_tests -M -p 10
ksmt_run ksm_tests-U 600 ksm_tests -U
ksmt_run ksm_tests-Z0 600 ksm_tests -Z -p 10 -z 0
ksmt_run ksm_tests-Z1 600 ksm_tests -Z -p 10 -z 1
ksmt_run ksm_tests-N1 600 ksm_tests -N -m 1
ksmt_run ksm_tests-N0 600 ksm_tests -N -m 0
ksmt_run ksm_tests-P 600 ksm_tests -P -s 100
ksmt_run ksm_tests-H 600 ksm_tests -H -s 100
ksmt_run ksm_tests-D 600 ksm_tests -D -s 100
ksmt_run ksm_tests-C 600 ksm_tests -C -s 100
ksmt_run ksm_functional_tests 600 ksm_functional_tests
ksmt_run cow 900 cow
for t in /tests/ksm_*; do
	n=${t##*/}
	case $n in
	ksm_tests|ksm_functional_tests|ksm_torture|ksm_demo|ksm_bench) continue ;;
	esac
	ksmt_run "$n" 300 "$t"
done
