/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Real QEMU guests inside the test guest, for `make run VMS=1` (ksm_demo)
 * and the full bench (ksm_bench vms): harness/vms.sh puts QEMU, a kernel
 * and an initramfs whose init prints "nested guest up" under /vm.  Guest
 * @i of a set named @prefix logs its console to <prefix><i>.log.
 */
#ifndef NESTED_VM_H
#define NESTED_VM_H

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static inline void nested_vm_log(char *buf, size_t len, const char *prefix,
				 int i)
{
	snprintf(buf, len, "%s%d.log", prefix, i);
}

/*
 * Exec QEMU for guest @i, @mib MiB of RAM, 1 vCPU, TCG (QEMU's default
 * mem-merge=on madvises its RAM mergeable).  Returns only on failure.
 */
static inline void nested_vm_exec(const char *prefix, int i, int mib)
{
	char mem[16], log[96], serial[128];

	snprintf(mem, sizeof(mem), "%d", mib);
	nested_vm_log(log, sizeof(log), prefix, i);
	snprintf(serial, sizeof(serial), "file:%s", log);
	execlp("qemu-system-x86_64", "qemu-system-x86_64", "-L",
	       "/usr/share/qemu", "-accel", "tcg,tb-size=32", "-m", mem,
	       "-smp", "1", "-nodefaults", "-display", "none", "-vga", "none",
	       "-no-reboot", "-kernel", "/vm/bzImage", "-initrd",
	       "/vm/initrd.gz", "-append",
	       "console=ttyS0 loglevel=3 acpi=noirq mitigations=off panic=-1",
	       "-serial", serial, "-monitor", "none", (char *)NULL);
}

/* How many of the @n guests of @prefix printed that they are up. */
static inline int nested_vms_up(const char *prefix, int n)
{
	char path[96], line[256];
	int up = 0;

	for (int i = 0; i < n; i++) {
		FILE *f;

		nested_vm_log(path, sizeof(path), prefix, i);
		f = fopen(path, "r");
		if (!f)
			continue;
		while (fgets(line, sizeof(line), f))
			if (strstr(line, "nested guest up")) {
				up++;
				break;
			}
		fclose(f);
	}
	return up;
}

#endif /* NESTED_VM_H */
