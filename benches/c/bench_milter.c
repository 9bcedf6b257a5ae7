/*
 * The benchmark filter on libmilter, as shipped practice: reads every header and the whole
 * body, adds "X-Bench: 1" at end of message and accepts. Same negotiation as the Rust
 * filter: every event but UNKNOWN, SKIP; with -n no SKIP but no reply to any event before
 * end of message (NR_CONN, NR_HELO, NR_MAIL, NR_RCPT, NR_DATA, NR_HDR, NR_EOH, NR_BODY), as
 * the library derives for a filter that answers nothing before then.
 *
 * Build: cc -O2 -o bench_milter bench_milter.c -lmilter -lpthread
 * Run:   bench_milter inet:PORT@127.0.0.1 [-n]
 *
 * Prints "listening SPEC" once the socket is open. libmilter serves each connection on its
 * own thread.
 */
#include <libmilter/mfapi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int no_reply = 0;
static volatile size_t seen = 0;

/* What every callback before end of message returns. */
#define ANSWER (no_reply ? SMFIS_NOREPLY : SMFIS_CONTINUE)

static sfsistat bench_connect(SMFICTX *ctx, char *host, _SOCK_ADDR *addr) {
    (void)ctx; (void)host; (void)addr;
    return ANSWER;
}

static sfsistat bench_helo(SMFICTX *ctx, char *name) {
    (void)ctx; (void)name;
    return ANSWER;
}

static sfsistat bench_envfrom(SMFICTX *ctx, char **argv) {
    (void)ctx; (void)argv;
    return ANSWER;
}

static sfsistat bench_envrcpt(SMFICTX *ctx, char **argv) {
    (void)ctx; (void)argv;
    return ANSWER;
}

static sfsistat bench_data(SMFICTX *ctx) {
    (void)ctx;
    return ANSWER;
}

static sfsistat bench_header(SMFICTX *ctx, char *name, char *value) {
    (void)ctx;
    seen += strlen(name) + strlen(value);
    return ANSWER;
}

static sfsistat bench_eoh(SMFICTX *ctx) {
    (void)ctx;
    return ANSWER;
}

static sfsistat bench_body(SMFICTX *ctx, unsigned char *chunk, size_t len) {
    (void)ctx; (void)chunk;
    seen += len;
    return ANSWER;
}

static sfsistat bench_eom(SMFICTX *ctx) {
    if (smfi_addheader(ctx, "X-Bench", "1") != MI_SUCCESS)
        return SMFIS_TEMPFAIL;
    return SMFIS_ACCEPT;
}

static sfsistat bench_abort(SMFICTX *ctx) {
    (void)ctx;
    return SMFIS_CONTINUE;
}

static sfsistat bench_close(SMFICTX *ctx) {
    (void)ctx;
    return SMFIS_CONTINUE;
}

static sfsistat bench_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1,
                                unsigned long f2, unsigned long f3, unsigned long *pf0,
                                unsigned long *pf1, unsigned long *pf2, unsigned long *pf3) {
    unsigned long wanted = SMFIP_NOUNKNOWN | SMFIP_SKIP;
    (void)ctx; (void)f2; (void)f3;
    if (no_reply)
        wanted = SMFIP_NOUNKNOWN | SMFIP_NR_CONN | SMFIP_NR_HELO | SMFIP_NR_MAIL |
                 SMFIP_NR_RCPT | SMFIP_NR_DATA | SMFIP_NR_HDR | SMFIP_NR_EOH | SMFIP_NR_BODY;
    *pf0 = f0 & SMFIF_ADDHDRS;
    *pf1 = f1 & wanted;
    *pf2 = 0;
    *pf3 = 0;
    return SMFIS_CONTINUE;
}

int main(int argc, char **argv) {
    struct smfiDesc desc;
    if (argc < 2) {
        fprintf(stderr, "usage: %s SOCKET [-n]\n", argv[0]);
        return 2;
    }
    if (argc > 2 && strcmp(argv[2], "-n") == 0)
        no_reply = 1;
    memset(&desc, 0, sizeof desc);
    desc.xxfi_name = "bench";
    desc.xxfi_version = SMFI_VERSION;
    desc.xxfi_flags = SMFIF_ADDHDRS;
    desc.xxfi_connect = bench_connect;
    desc.xxfi_helo = bench_helo;
    desc.xxfi_envfrom = bench_envfrom;
    desc.xxfi_envrcpt = bench_envrcpt;
    desc.xxfi_header = bench_header;
    desc.xxfi_eoh = bench_eoh;
    desc.xxfi_body = bench_body;
    desc.xxfi_eom = bench_eom;
    desc.xxfi_abort = bench_abort;
    desc.xxfi_close = bench_close;
    desc.xxfi_data = bench_data;
    desc.xxfi_negotiate = bench_negotiate;
    if (smfi_setconn(argv[1]) != MI_SUCCESS || smfi_setbacklog(4096) != MI_SUCCESS ||
        smfi_register(desc) != MI_SUCCESS || smfi_opensocket(1) != MI_SUCCESS) {
        fprintf(stderr, "bench_milter: cannot listen on %s\n", argv[1]);
        return 1;
    }
    printf("listening %s\n", argv[1]);
    fflush(stdout);
    return smfi_main() == MI_SUCCESS ? 0 : 1;
}
