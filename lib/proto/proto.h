/* proto.h: the agent protocol codec (docs/protocol.md), shared by the agent,
 * the supervisor and the library's client side.  libc only.
 *
 * A frame is a 12-byte header (payload length u32, type u16, flags u16,
 * stream u32; all big-endian) and a payload of at most PROTO_MAX_PAYLOAD
 * bytes, checked before anything is allocated.  Structured payloads are
 * sequences of TLV items (tag u16, length u32, value), nestable.
 */
#ifndef CAPSA_PROTO_H
#define CAPSA_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/str.h"

#define PROTO_MAGIC 0x43505341u /* "CPSA" */
#define PROTO_VERSION 1
#define PROTO_HDR_SIZE 12
#define PROTO_MAX_PAYLOAD (256u * 1024u)
#define PROTO_DATA_CHUNK (256u * 1024u)
/* Per-stream output window: bytes a producer may send before credit. */
#define PROTO_WINDOW (2048u * 1024u)
/* Consumers return credit in batches of at least this much (or when they
 * have nothing more to wait for): one CREDIT frame per DATA frame would
 * double the frames and the wakeups on the way back. */
#define PROTO_CREDIT_BATCH (PROTO_WINDOW / 8)
#define PROTO_TLV_HDR 6
#define PROTO_MAX_DEPTH 4
/* The main process's stream between supervisor and agent, and the stream a
 * creator attached from the start uses. */
#define PROTO_MAIN_STREAM 1

enum proto_type {
	/* connection (stream 0) */
	P_HELLO = 0x01,	    /* TLV: T_MAGIC T_VERSION T_MAX_PAYLOAD T_NAME */
	P_ERROR = 0x02,	    /* TLV: T_CODE T_MESSAGE; on a stream: that request failed */
	P_PING = 0x03,	    /* u64 token */
	P_PONG = 0x04,	    /* u64 token */
	P_SHUTDOWN = 0x05,  /* supervisor -> agent: kill everything and exit */

	/* processes: one stream per process session */
	P_PROC_START = 0x10,   /* TLV process spec (proto_proc) */
	P_PROC_STARTED = 0x11, /* TLV: T_PID */
	P_DATA = 0x12,	       /* flags = channel; payload = bytes */
	P_CREDIT = 0x13,       /* flags = channel; payload = u32 bytes */
	P_EOF = 0x14,	       /* flags = channel */
	P_SIGNAL = 0x15,       /* u32 signal */
	P_RESIZE = 0x16,       /* u16 rows, u16 cols */
	P_EXIT = 0x17,	       /* TLV: T_EXIT_CODE T_SIGNAL T_CODE T_MESSAGE T_REASON */
	P_INIT = 0x18,	       /* supervisor -> agent, stream 0: sandbox defaults */
	P_CANCEL = 0x19,       /* -> agent: abort a file, watch or tunnel stream */
	P_DETACH = 0x1a,       /* client -> supervisor: keep this process, I leave it */

	/* files: one stream per operation */
	P_FILE_OP = 0x20,      /* TLV request (proto_fileop) */
	P_FILE_RESULT = 0x21,  /* TLV: the last frame of a file operation */
	P_FILE_INFO = 0x22,    /* T_ENTRY items (proto_finfo): stat, list, read */
	P_FILE_EVENT = 0x23,   /* T_ENTRY items: watch events */

	/* port tunnels: one stream per connection */
	P_TUNNEL_OPEN = 0x30,  /* TLV: T_PORT; reply OK or ERROR */
	P_TUNNEL_CLOSED = 0x31, /* agent -> : the last frame of a tunnel */

	/* client <-> supervisor only */
	P_SPEC = 0x40,	     /* creator -> supervisor: the sandbox spec */
	P_READY = 0x41,	     /* supervisor -> creator: TLV: T_PID (init pid) */
	P_ATTACH = 0x42,     /* attach to the main process; flags: ATTACH_* */
	P_STATUS = 0x43,     /* request; reply TLV: T_STATE T_PID ... */
	P_STOP = 0x44,	     /* TLV: T_TIMEOUT_MS T_SIGNAL */
	P_KILL = 0x45,	     /* u32 signal */
	P_PAUSE = 0x46,
	P_RESUME = 0x47,
	P_FINAL = 0x48,	     /* supervisor -> clients: the sandbox ended (TLV exit record) */
	P_OK = 0x49,	     /* generic success reply on a request stream */
	P_UPDATE = 0x4a,     /* TLV: T_TIMEOUT_MS ... */
	P_TOUCH = 0x4b,
	P_PROCS = 0x4c,	     /* list processes; reply P_PROCS with T_ENTRY items */
	P_PROC_SIGNAL = 0x4d, /* TLV: selector, T_SIGNAL, T_GROUP */
	P_PORTS = 0x4e,	     /* list published ports; reply P_PORTS with T_ENTRY items */
	P_PUBLISH = 0x4f,     /* TLV: T_HOST_IP T_HOST_PORT T_PORT; reply P_PORTS */
};

/* DATA/CREDIT/EOF channels (frame flags). */
enum { CH_STDIN = 0, CH_STDOUT = 1, CH_STDERR = 2 };

/* P_ATTACH flags */
enum { ATTACH_STDIN = 1, ATTACH_STDOUT = 2, ATTACH_STDERR = 4, ATTACH_REPLAY = 8 };

/* PROC_START flags */
enum {
	PROC_START_KEEP = 1,   /* survives its client */
	PROC_START_DIRECT = 2, /* stdio pipes handed to the client (SCM_RIGHTS) */
	PROC_START_NO_ATTACH = 4, /* a kept process's starter only wants it started */
};

/* P_FILE_OP operations */
enum proto_file_opcode {
	FOP_STAT = 1, FOP_LIST, FOP_READ, FOP_WRITE, FOP_MKDIR, FOP_REMOVE, FOP_RENAME, FOP_TAR_GET, FOP_TAR_PUT,
	FOP_WATCH,
};

/* P_FILE_OP T_FLAGS bits */
enum {
	FOPF_PARENTS = 1,    /* create missing parents */
	FOPF_RECURSIVE = 2,  /* remove, watch */
	FOPF_EXCL = 4,	     /* write: create only; rename: no replace */
	FOPF_APPEND = 8,     /* write */
	FOPF_CHOWN = 16,     /* tar put: keep the archive's owners */
	FOPF_FOLLOW = 32,    /* stat: follow a final symlink */
};

/* watch event kinds (T_EVENT) */
enum { FEV_CREATE = 0, FEV_WRITE, FEV_REMOVE, FEV_RENAME, FEV_CHMOD, FEV_OVERFLOW };

/* TLV tags.  Tags are global so a dump reads the same whatever the frame. */
enum proto_tag {
	T_MAGIC = 1, T_VERSION, T_MAX_PAYLOAD, T_NAME, T_CODE, T_MESSAGE, T_PID, T_EXIT_CODE,
	T_SIGNAL, T_REASON, T_STATE, T_TIMEOUT_MS, T_TIME_MS,

	/* process spec */
	T_ARG = 20, T_ENV, T_CWD, T_USER, T_TTY, T_ROWS, T_COLS, T_STDIN, T_MAIN,
	T_CAPS, T_NO_NEW_PRIVS, T_RLIMIT, T_SECCOMP, T_NO_SECCOMP, T_UMASK, T_WINDOW,
	T_CAP_BOUNDING, T_CAP_EFFECTIVE, T_CAP_PERMITTED, T_CAP_INHERITABLE, T_CAP_AMBIENT,
	T_KILL_GRACE_MS, T_OOM_SCORE_ADJ,

	/* sandbox spec */
	T_ID = 60, T_RUN_DIR, T_SANDBOX_DIR, T_ROOTFS, T_OVERLAY_DATA, T_OVERLAY_DIR, T_READONLY,
	T_HOSTNAME, T_MOUNT, T_M_SOURCE, T_M_TARGET, T_M_FSTYPE, T_M_DATA, T_M_FLAGS,
	T_M_PROPAGATION, T_M_BIND, T_M_RECURSIVE, T_M_FILE, T_CG_MEMORY, T_CG_SWAP, T_CG_CPU_QUOTA,
	T_CG_CPU_PERIOD, T_CG_CPU_SHARES, T_CG_PIDS, T_HOSTS, T_RESOLV, T_PROC, T_STOP_SIGNAL,
	T_LOG_MAX_SIZE, T_LOG_MAX_FILES, T_AGENT_PATH, T_CAPSA_PATH, T_CREATOR_FINALIZES,
	T_SHM_SIZE, T_IDLE_TIMEOUT_MS, T_DEADLINE_MS, T_ROOT_DIR, T_CG_NAME, T_NETWORK,
	T_STARTED_AT, T_FINISHED_AT, T_OOM, T_MASKED, T_RO_PATH, T_ENV_ROOT, T_CREATOR_ATTACH, T_SUPERVISOR_PID,

	/* sessions, files, tunnels (150 on) */
	T_TAG = 150, T_KEEP, T_ENTRY, T_GROUP, T_RUNNING, T_ATTACHED, T_BUFFERED, T_DROPPED,
	T_OP, T_PATH, T_PATH2, T_MODE, T_FLAGS, T_DEPTH, T_MAX, T_SIZE, T_TYPE, T_UID, T_GID, T_OWNER,
	T_GROUPNAME, T_MTIME, T_LINK, T_EVENT, T_IS_DIR, T_CREATED,
	T_PORT, T_HOST_IP, T_HOST_PORT, T_COUNT, T_RX, T_TX, T_PUBLISH, T_FRAMED,

	/* sandbox limits (230 on) */
	T_DISK_IMAGE = 230, T_DISK_MOUNT, T_DISK_SIZE, T_PTY_MAX,
	/* user namespaces (sandbox spec, 240 on) */
	T_USERNS_UID = 240, T_USERNS_GID, T_USERNS_COUNT, T_M_IDMAP,
};

struct proto_hdr {
	uint32_t len;
	uint16_t type;
	uint16_t flags;
	uint32_t stream;
};

void proto_hdr_encode(const struct proto_hdr *h, uint8_t out[PROTO_HDR_SIZE]);
/* -1 when the announced payload exceeds max_payload (the frame must not be
 * read: the connection is dropped). */
int proto_hdr_decode(const uint8_t in[PROTO_HDR_SIZE], struct proto_hdr *h, uint32_t max_payload);

/* Frame building into a buffer: begin, put TLVs or raw bytes, end. */
size_t proto_frame_begin(struct buf *b, uint16_t type, uint16_t flags, uint32_t stream);
/* Patches the length; -1 (and the frame is dropped from b) if over the max. */
int proto_frame_end(struct buf *b, size_t start);
int proto_frame_raw(struct buf *b, uint16_t type, uint16_t flags, uint32_t stream, const void *p, size_t n);

void tlv_put(struct buf *b, uint16_t tag, const void *p, size_t n);
void tlv_put_str(struct buf *b, uint16_t tag, const char *s);
void tlv_put_u64(struct buf *b, uint16_t tag, uint64_t v);
void tlv_put_i64(struct buf *b, uint16_t tag, int64_t v);
void tlv_put_flag(struct buf *b, uint16_t tag, bool on);
/* Nested TLV: begin returns a mark for end. */
size_t tlv_begin(struct buf *b, uint16_t tag);
void tlv_end(struct buf *b, size_t mark);

struct tlv_iter {
	const uint8_t *p;
	size_t left;
};

static inline void tlv_iter_init(struct tlv_iter *it, const void *p, size_t n)
{
	it->p = p;
	it->left = n;
}
/* 1: an item, 0: end, -1: malformed (length past the end). */
int tlv_next(struct tlv_iter *it, uint16_t *tag, const uint8_t **val, uint32_t *len);
int tlv_u64(const uint8_t *val, uint32_t len, uint64_t *out);
int tlv_i64(const uint8_t *val, uint32_t len, int64_t *out);
/* Heap copy; NULL when the value holds a NUL byte. */
char *tlv_str(const uint8_t *val, uint32_t len);
/* The first u64 item with tag in a TLV payload; *out is left alone (and -1
 * returned) when there is none or it is malformed. */
int tlv_find_u64(const void *p, size_t n, uint16_t tag, uint64_t *out);
/* true when the payload holds an item with tag (a flag). */
bool tlv_has(const void *p, size_t n, uint16_t tag);

static inline uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint16_t get_be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}
static inline void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}
static inline void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

const char *proto_type_name(uint16_t type);

#endif
