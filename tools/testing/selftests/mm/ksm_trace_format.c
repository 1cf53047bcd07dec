// SPDX-License-Identifier: GPL-2.0
/*
 * KSM selftest: the ksm tracepoints keep upstream 6.12's format.  perf,
 * bpftrace scripts and trace parsers read these events by field name and
 * type, and by their print format, so each event's own fields (name, type,
 * size, signedness) and its "print fmt" line must be exactly upstream's.
 * The expected text below is what 6.12's include/trace/events/ksm.h gives
 * on a 64-bit kernel; on the unmodified kernel the test passes as is.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kselftest.h"
#include "ksm_common.h"

#define TRACEFS		"/sys/kernel/tracing/events/ksm/"
#define MAX_FIELDS	8

struct ksm_event_format {
	const char *name;
	const char *fields[MAX_FIELDS];	/* "TYPE NAME; size:N; signed:S;" */
	const char *print_fmt;
};

#define F_INT(n)	"int " n "; size:4; signed:1;"
#define F_U32(n)	"u32 " n "; size:4; signed:0;"
#define F_UINT(n)	"unsigned int " n "; size:4; signed:0;"
#define F_S64(n)	"s64 " n "; size:8; signed:1;"
#define F_ULONG(n)	"unsigned long " n "; size:8; signed:0;"
#define F_PTR(n)	"void * " n "; size:8; signed:0;"

/* Pieces of the longer print formats, to keep lines short. */
#define MERGE_ONE_FMT	"\"ksm pfn %lu rmap_item %p mm %p error %d\""
#define MERGE_KSM_FMT	"\"%spfn %lu rmap_item %p mm %p error %d\""
#define KSM_PREFIX	"(REC->ksm_page ? \"ksm \" : \"\")"
#define ADVISOR_FMT	"\"ksm scan time %lld pages_to_scan %lu cpu percent %u\""
#define R_ITEM_MM	"REC->rmap_item, REC->mm"

static const struct ksm_event_format expected[] = {
	{ "ksm_start_scan", { F_INT("seq"), F_U32("rmap_entries") },
	  "\"seq %d rmap size %d\", REC->seq, REC->rmap_entries" },
	{ "ksm_stop_scan", { F_INT("seq"), F_U32("rmap_entries") },
	  "\"seq %d rmap size %d\", REC->seq, REC->rmap_entries" },
	{ "ksm_enter", { F_PTR("mm") }, "\"mm %p\", REC->mm" },
	{ "ksm_exit", { F_PTR("mm") }, "\"mm %p\", REC->mm" },
	{ "ksm_merge_one_page",
	  { F_ULONG("pfn"), F_PTR("rmap_item"), F_PTR("mm"), F_INT("err") },
	  MERGE_ONE_FMT ", REC->pfn, " R_ITEM_MM ", REC->err" },
	{ "ksm_merge_with_ksm_page",
	  { F_PTR("ksm_page"), F_ULONG("pfn"), F_PTR("rmap_item"),
	    F_PTR("mm"), F_INT("err") },
	  MERGE_KSM_FMT ", " KSM_PREFIX ", REC->pfn, " R_ITEM_MM ", REC->err" },
	{ "ksm_remove_ksm_page", { F_ULONG("pfn") }, "\"pfn %lu\", REC->pfn" },
	{ "ksm_remove_rmap_item",
	  { F_ULONG("pfn"), F_PTR("rmap_item"), F_PTR("mm") },
	  "\"pfn %lu rmap_item %p mm %p\", REC->pfn, REC->rmap_item, REC->mm" },
	{ "ksm_advisor",
	  { F_S64("scan_time"), F_ULONG("pages_to_scan"),
	    F_UINT("cpu_percent") },
	  ADVISOR_FMT ", REC->scan_time, REC->pages_to_scan, REC->cpu_percent" },
};

/* Collapse runs of blanks to one space; drop leading and trailing ones. */
static void squeeze(char *s)
{
	char *start = s, *d = s;
	bool blank = false;

	for (; *s; s++) {
		if (*s == ' ' || *s == '\t' || *s == '\n') {
			blank = true;
			continue;
		}
		if (blank && d != start)
			*d++ = ' ';
		blank = false;
		*d++ = *s;
	}
	*d = '\0';
}

/*
 * "field:TYPE NAME; offset:O; size:S; signed:G;" -> "TYPE NAME; size:S;
 * signed:G;" (the offset only follows from the fields before it).
 */
static void drop_offset(char *line)
{
	char *o = strstr(line, " offset:");
	char *end = o ? strchr(o + 1, ';') : NULL;

	if (end)
		memmove(o, end + 1, strlen(end + 1) + 1);
}

static int check_event(const struct ksm_event_format *e)
{
	char path[256], line[512], fmt[512] = "";
	int nfields = 0, bad = 0;
	FILE *f;

	snprintf(path, sizeof(path), TRACEFS "%s/format", e->name);
	f = fopen(path, "r");
	if (!f) {
		ksft_print_msg("%s: %s\n", path, strerror(errno));
		return 1;
	}
	while (fgets(line, sizeof(line), f)) {
		char *p;

		squeeze(line);
		p = line;
		if (!strncmp(p, "print fmt: ", 11)) {
			snprintf(fmt, sizeof(fmt), "%s", p + 11);
			continue;
		}
		if (strncmp(p, "field:", 6) || strstr(p, " common_"))
			continue;
		p += 6;
		drop_offset(p);
		if (nfields >= MAX_FIELDS || !e->fields[nfields]) {
			ksft_print_msg("%s: unexpected field '%s'\n", e->name, p);
			bad++;
		} else if (strcmp(p, e->fields[nfields])) {
			ksft_print_msg("%s: field %d is '%s', upstream '%s'\n",
				       e->name, nfields, p, e->fields[nfields]);
			bad++;
		}
		nfields++;
	}
	fclose(f);
	if (nfields < MAX_FIELDS && e->fields[nfields]) {
		ksft_print_msg("%s: field '%s' missing\n", e->name,
			       e->fields[nfields]);
		bad++;
	}
	if (strcmp(fmt, e->print_fmt)) {
		ksft_print_msg("%s: print fmt is '%s'\n", e->name, fmt);
		ksft_print_msg("%s:     upstream's '%s'\n", e->name, e->print_fmt);
		bad++;
	}
	return bad;
}

/*
 * Every event's format file as it is (less the ID line, which numbers
 * events kernel by kernel), one "# format EVENT: LINE" per line, so that
 * the console logs of two kernels can be diffed whole.
 */
static void dump_formats(void)
{
	char cmd[] = "cd " TRACEFS " && for e in */; do e=${e%/}; "
		     "grep -v '^ID:' \"$e/format\" | sed \"s|^|# format $e: |\"; done";

	fflush(stdout);
	if (system(cmd))
		ksft_print_msg("could not list the formats\n");
	fflush(stdout);
}

int main(void)
{
	unsigned int i;

	ksft_print_header();
	if (sizeof(long) != 8)
		ksft_exit_skip("expected formats are those of a 64-bit kernel\n");
	if (access(TRACEFS, R_OK))
		ksft_exit_skip("no %s (tracefs not mounted, or no KSM events)\n",
			       TRACEFS);
	dump_formats();
	ksft_set_plan(ARRAY_SIZE(expected));
	for (i = 0; i < ARRAY_SIZE(expected); i++)
		ksft_test_result(!check_event(&expected[i]),
				 "%s has upstream's format\n",
				 expected[i].name);
	ksft_finished();
}
