/* test-ledger.c: the capacity ledger (lib/sandbox/ledger.c): usage sums
 * the rows of sandboxes that have not ended, admission refuses what does
 * not fit naming the resource, the disk guard, and the release. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "capsa/admission.h"
#include "sandbox/ledger.h"
#include "store/context.h"
#include "store/store.h"
#include "tap.h"
#include "util/fs.h"

static void row(struct store *db, const char *id, const char *state, int64_t cpus, int64_t mem, int64_t disk)
{
	sqlite3_stmt *st = NULL;
	store_prepare(db,
		      "INSERT INTO sandboxes(id, name, state, created_at, reserved_cpus_milli, reserved_memory, "
		      "reserved_disk, reserved) VALUES(?1, ?1, ?2, 0, ?3, ?4, ?5, 1)",
		      &st, NULL);
	store_bind_text(st, 1, id);
	store_bind_text(st, 2, state);
	sqlite3_bind_int64(st, 3, cpus);
	sqlite3_bind_int64(st, 4, mem);
	sqlite3_bind_int64(st, 5, disk);
	sqlite3_step(st);
	sqlite3_finalize(st);
}

int main(void)
{
	char tmpl[] = "/tmp/capsa-ledger-XXXXXX";
	ok(mkdtemp(tmpl) != NULL, "mkdtemp");
	char *root = xasprintf("%s/root", tmpl), *run = xasprintf("%s/run", tmpl);
	struct capsa_ctx_opts o = { .root = root, .run_root = run };
	struct capsa_ctx *ctx = NULL;
	struct capsa_error *err = NULL;
	ok(capsa_ctx_open(&o, &ctx, &err) == 0, "open context");
	struct store *db = ctx_db(ctx, &err);

	struct capsa_capacity host;
	ok(capsa_capacity_from_host(ctx, &host, &err) == 0, "host capacity");
	ok(host.cpus_milli >= 1000 && host.memory > 0 && host.disk > 0 && host.min_free_disk == 1LL << 30,
	   "host capacity is the machine's: %lld cpus, %lld bytes", (long long)host.cpus_milli,
	   (long long)host.memory);

	row(db, "a", "running", 500, 100 << 20, 0);
	row(db, "b", "paused", 250, 50 << 20, 1 << 30);
	row(db, "c", "exited", 4000, 1LL << 40, 0); /* ended: counts for nothing */
	struct capsa_ledger u;
	ok(capsa_ledger_usage(ctx, &u, &err) == 0, "usage");
	ok(u.cpus_milli == 750 && u.memory == 150 << 20 && u.disk == 1 << 30 && u.sandboxes == 2,
	   "sums what has not ended: %lld %lld %lld %lld", (long long)u.cpus_milli, (long long)u.memory,
	   (long long)u.disk, (long long)u.sandboxes);

	struct capsa_sandbox_opts so = { .cpus_milli = 500, .memory = 10 << 20 };
	ok(ledger_admit(ctx, db, &so, &err) == 0, "no capacity set: never refused");
	struct capsa_capacity cap = { .cpus_milli = 1000, .memory = 200 << 20, .disk = 2LL << 30 };
	capsa_ctx_set_capacity(ctx, &cap);
	ok(ledger_admit(ctx, db, &so, &err) < 0 && err->code == EDQUOT && strstr(err->msg, "cpus: 0.5 requested, 0.25 of 1 left"),
	   "cpus exhausted: %s", err ? err->msg : "");
	capsa_error_free(err);
	err = NULL;
	so.cpus_milli = 250;
	ok(ledger_admit(ctx, db, &so, &err) == 0, "fits exactly");
	so.memory = 51 << 20;
	ok(ledger_admit(ctx, db, &so, &err) < 0 && strstr(err->msg, "memory: 51.0 MiB requested, 50.0 MiB of 200.0 MiB"),
	   "memory exhausted: %s", err ? err->msg : "");
	capsa_error_free(err);
	err = NULL;
	so = (struct capsa_sandbox_opts){ .disk = (1LL << 30) + 1 };
	ok(ledger_admit(ctx, db, &so, &err) < 0 && strstr(err->msg, "disk"), "disk exhausted: %s",
	   err ? err->msg : "");
	capsa_error_free(err);
	err = NULL;
	so = (struct capsa_sandbox_opts){ 0 };
	ok(ledger_admit(ctx, db, &so, &err) == 0, "a sandbox without limits reserves nothing");

	ledger_release(ctx, "a");
	ledger_release(ctx, "a"); /* exactly once: the second changes nothing */
	ok(capsa_ledger_usage(ctx, &u, &err) == 0 && u.cpus_milli == 250 && u.sandboxes == 1, "released once");

	ok(ledger_check_disk(ctx, &err) == 0, "the disk guard passes with room");
	cap.min_free_disk = INT64_MAX / 2;
	capsa_ctx_set_capacity(ctx, &cap);
	ok(ledger_check_disk(ctx, &err) < 0 && err->code == ENOSPC && strstr(err->msg, "disk pressure"),
	   "the disk guard: %s", err ? err->msg : "");
	capsa_error_free(err);
	err = NULL;
	capsa_ctx_set_capacity(ctx, NULL);
	ok(ledger_check_disk(ctx, &err) == 0, "no guard without a capacity");

	capsa_ctx_free(ctx);
	rm_rf_at(AT_FDCWD, tmpl, NULL);
	free(root);
	free(run);
	return done_testing();
}
