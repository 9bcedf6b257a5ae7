/*
 * The libmilter side of tests/libmilter_diff.rs: a filter whose every answer is chosen by
 * the MTA side, so that the same conversation can be played against it and against the
 * same filter written with async-milter's hooks (tests/libmilter_diff/ours.rs) and the
 * replies compared packet by packet.
 *
 * Build: cc -o diff_milter diff_milter.c -lmilter -lpthread
 * Run:   diff_milter unix:/path CONFIG
 *
 * CONFIG picks the negotiation (what a libmilter author would write for that filter):
 *   full     every callback, every event answered; SKIP when offered
 *   noreply  as full, but headers, end of headers and body chunks are not answered
 *            (NR_HDR, NR_EOH, NR_BODY: libmilter fakes the reply where not offered)
 *   nr_all   every callback, no event but end of message answered (every NR_* bit)
 *   minimal  only end of message (plus abort and close), no negotiate callback: the
 *            protocol reply comes from the callbacks registered; ADDHDRS and CHGHDRS are
 *            required (xxfi_flags)
 *   options  as full, plus RCPT_REJ and HDR_LEADSPC when offered, and macro lists for
 *            CONNECT and HELO
 *   macros   as full, plus macro lists for RCPT and end of message
 *
 * The behaviour comes from the macro {plan} (the newest stage that has one: the MAIL
 * macros for a message, the CONNECT macros for the connection): items `key=action`
 * separated by ';'. Keys: conn helo mail rcpt data hdr eoh body eom unknown, and for
 * rcpt, hdr and body also rcptN, hdrN, bodyN (the N-th of the message, from 1), which
 * win over the plain key. Actions (fields separated by '/'):
 *   cont acc rej tf disc skip
 *   reply/CODE/XCODE/TEXT         smfi_setreply (XCODE '-': none), status by the code's class
 *   setreply/CODE/XCODE/TEXT/ST   smfi_setreply, then status ST (rej tf acc cont)
 *   ml/CODE/XCODE/LINE/LINE[/LINE] smfi_setmlreply, status by the code's class
 *   echo                          reject with 550 5.7.1 and a text describing the event
 *   macro/NAME                    reject with 550 5.7.1 "NAME=value" (or "NAME unset")
 * Key `edits` lists end-of-message edits separated by '|', applied in order:
 *   addhdr/NAME/VALUE  ins/top/NAME/VALUE  ins/before/P/NAME/VALUE  ins/after/P/NAME/VALUE
 *   chghdr/NAME/IDX/VALUE  delhdr/NAME/IDX  body/TEXT ('~' is CRLF)  bigbody/LEN
 *   emptybody  chgfrom/ADDR[/ARGS]  addrcpt/ADDR  addrcptpar/ADDR/ARGS  delrcpt/ADDR
 *   quar/REASON  progress
 * Return values of the edit calls are ignored, as the Rust side ignores refused edits.
 *
 * Prints "listening" once the socket is open. Written for the test; no code is taken from
 * libmilter or any other filter.
 */
#include <libmilter/mfapi.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

enum config { FULL, NOREPLY, NR_ALL, MINIMAL, OPTIONS, MACROS };
static enum config config;

/* Per connection: the position of the current recipient, header and body chunk. */
struct counters {
    int rcpt, hdr, body;
};

static struct counters *counters(SMFICTX *ctx) {
    struct counters *c = smfi_getpriv(ctx);
    if (c == NULL) {
        c = calloc(1, sizeof *c);
        smfi_setpriv(ctx, c);
    }
    return c;
}

static void reset(SMFICTX *ctx) {
    struct counters *c = counters(ctx);
    c->rcpt = c->hdr = c->body = 0;
}

/* The value of `key` in the plan, copied into out; 0 if the plan has no such item. */
static int plan_item(SMFICTX *ctx, const char *key, char *out, size_t outlen) {
    const char *plan = smfi_getsymval(ctx, "{plan}");
    size_t klen = strlen(key);
    if (plan == NULL)
        return 0;
    while (*plan != '\0') {
        const char *end = strchr(plan, ';');
        size_t len = end ? (size_t)(end - plan) : strlen(plan);
        if (len > klen && strncmp(plan, key, klen) == 0 && plan[klen] == '=') {
            size_t vlen = len - klen - 1;
            if (vlen >= outlen)
                vlen = outlen - 1;
            memcpy(out, plan + klen + 1, vlen);
            out[vlen] = '\0';
            return 1;
        }
        if (end == NULL)
            break;
        plan = end + 1;
    }
    return 0;
}

/* Splits s at '/' in place; returns the number of fields. */
static int fields(char *s, char **out, int max) {
    int n = 0;
    while (n < max) {
        out[n++] = s;
        s = strchr(s, '/');
        if (s == NULL)
            break;
        *s++ = '\0';
    }
    return n;
}

static sfsistat by_class(const char *code) {
    return code[0] == '4' ? SMFIS_TEMPFAIL : SMFIS_REJECT;
}

static sfsistat status_named(const char *name) {
    if (strcmp(name, "tf") == 0)
        return SMFIS_TEMPFAIL;
    if (strcmp(name, "acc") == 0)
        return SMFIS_ACCEPT;
    if (strcmp(name, "cont") == 0)
        return SMFIS_CONTINUE;
    return SMFIS_REJECT;
}

/*
 * The answer to the event `stage` (the n-th of its kind in the message, 0 when not
 * counted); echo describes the event for the `echo` action.
 */
static sfsistat decide(SMFICTX *ctx, const char *stage, int n, const char *echo) {
    char key[32], action[1024], *f[8];
    int nf, found = 0;
    if (n > 0) {
        snprintf(key, sizeof key, "%s%d", stage, n);
        found = plan_item(ctx, key, action, sizeof action);
    }
    if (!found && !plan_item(ctx, stage, action, sizeof action))
        return SMFIS_CONTINUE;
    nf = fields(action, f, 8);
    if (strcmp(f[0], "cont") == 0)
        return SMFIS_CONTINUE;
    if (strcmp(f[0], "acc") == 0)
        return SMFIS_ACCEPT;
    if (strcmp(f[0], "rej") == 0)
        return SMFIS_REJECT;
    if (strcmp(f[0], "tf") == 0)
        return SMFIS_TEMPFAIL;
    if (strcmp(f[0], "disc") == 0)
        return SMFIS_DISCARD;
    if (strcmp(f[0], "skip") == 0)
        return SMFIS_SKIP;
    if (strcmp(f[0], "reply") == 0 && nf >= 4) {
        smfi_setreply(ctx, f[1], strcmp(f[2], "-") == 0 ? NULL : f[2], f[3]);
        return by_class(f[1]);
    }
    if (strcmp(f[0], "setreply") == 0 && nf >= 5) {
        smfi_setreply(ctx, f[1], strcmp(f[2], "-") == 0 ? NULL : f[2], f[3]);
        return status_named(f[4]);
    }
    if (strcmp(f[0], "ml") == 0 && nf >= 5) {
        smfi_setmlreply(ctx, f[1], strcmp(f[2], "-") == 0 ? NULL : f[2], f[3], f[4],
                        nf >= 6 ? f[5] : NULL, (char *)NULL);
        return by_class(f[1]);
    }
    if (strcmp(f[0], "echo") == 0) {
        smfi_setreply(ctx, "550", "5.7.1", (char *)(echo ? echo : "-"));
        return SMFIS_REJECT;
    }
    if (strcmp(f[0], "macro") == 0 && nf >= 2) {
        char text[512];
        const char *value = smfi_getsymval(ctx, f[1]);
        if (value)
            snprintf(text, sizeof text, "%s=%s", f[1], value);
        else
            snprintf(text, sizeof text, "%s unset", f[1]);
        smfi_setreply(ctx, "550", "5.7.1", text);
        return SMFIS_REJECT;
    }
    return SMFIS_CONTINUE;
}

/* What the no-reply configurations return for an event they do not answer. */
static sfsistat unanswered(int not_answered, sfsistat status) {
    return not_answered ? SMFIS_NOREPLY : status;
}

static sfsistat x_connect(SMFICTX *ctx, char *host, _SOCK_ADDR *addr) {
    char text[512], ip[128] = "-";
    char family = 'U';
    unsigned port = 0;
    reset(ctx);
    if (addr != NULL && addr->sa_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)addr;
        family = '4';
        port = ntohs(in->sin_port);
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
    } else if (addr != NULL && addr->sa_family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)addr;
        family = '6';
        port = ntohs(in6->sin6_port);
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
    } else if (addr != NULL && addr->sa_family == AF_UNIX) {
        family = 'L';
        snprintf(ip, sizeof ip, "%s", ((struct sockaddr_un *)addr)->sun_path);
    }
    snprintf(text, sizeof text, "host=%s family=%c port=%u addr=%s", host, family, port, ip);
    return unanswered(config == NR_ALL, decide(ctx, "conn", 0, text));
}

static sfsistat x_helo(SMFICTX *ctx, char *name) {
    char text[512];
    snprintf(text, sizeof text, "helo=%s", name);
    return unanswered(config == NR_ALL, decide(ctx, "helo", 0, text));
}

/* "address arg arg ..." */
static void join_argv(char **argv, char *out, size_t outlen) {
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; argv[i] != NULL && used < outlen; i++)
        used += snprintf(out + used, outlen - used, "%s%s", i ? " " : "", argv[i]);
}

static sfsistat x_envfrom(SMFICTX *ctx, char **argv) {
    char text[512];
    reset(ctx);
    join_argv(argv, text, sizeof text);
    return unanswered(config == NR_ALL, decide(ctx, "mail", 0, text));
}

static sfsistat x_envrcpt(SMFICTX *ctx, char **argv) {
    char text[512];
    join_argv(argv, text, sizeof text);
    return unanswered(config == NR_ALL, decide(ctx, "rcpt", ++counters(ctx)->rcpt, text));
}

static sfsistat x_data(SMFICTX *ctx) {
    return unanswered(config == NR_ALL, decide(ctx, "data", 0, "data"));
}

static sfsistat x_header(SMFICTX *ctx, char *name, char *value) {
    char text[512];
    snprintf(text, sizeof text, "[%s]=[%s]", name, value);
    return unanswered(config == NR_ALL || config == NOREPLY,
                      decide(ctx, "hdr", ++counters(ctx)->hdr, text));
}

static sfsistat x_eoh(SMFICTX *ctx) {
    return unanswered(config == NR_ALL || config == NOREPLY, decide(ctx, "eoh", 0, "eoh"));
}

static sfsistat x_body(SMFICTX *ctx, unsigned char *chunk, size_t len) {
    char text[64];
    (void)chunk;
    snprintf(text, sizeof text, "len=%zu", len);
    return unanswered(config == NR_ALL || config == NOREPLY,
                      decide(ctx, "body", ++counters(ctx)->body, text));
}

static sfsistat x_unknown(SMFICTX *ctx, const char *command) {
    char text[512];
    snprintf(text, sizeof text, "unknown=%s", command);
    return unanswered(config == NR_ALL, decide(ctx, "unknown", 0, text));
}

/* '~' in a replacement body stands for CRLF. */
static void replace_body(SMFICTX *ctx, const char *text) {
    size_t len = 0;
    unsigned char *body = malloc(2 * strlen(text) + 1);
    for (; *text; text++) {
        if (*text == '~') {
            body[len++] = '\r';
            body[len++] = '\n';
        } else {
            body[len++] = (unsigned char)*text;
        }
    }
    smfi_replacebody(ctx, body, (int)len);
    free(body);
}

/* LEN bytes of lines of 76 letters ending in CRLF (the Rust side makes the same). */
static void big_body(SMFICTX *ctx, size_t len) {
    unsigned char *body = malloc(len + 1);
    for (size_t i = 0; i < len; i++) {
        size_t col = i % 78;
        body[i] = col == 76 ? '\r' : col == 77 ? '\n' : (unsigned char)('a' + (i / 78) % 26);
    }
    smfi_replacebody(ctx, body, (int)len);
    free(body);
}

static void apply_edit(SMFICTX *ctx, char *edit) {
    char *f[8];
    int nf = fields(edit, f, 8);
    if (strcmp(f[0], "addhdr") == 0 && nf >= 3)
        smfi_addheader(ctx, f[1], f[2]);
    else if (strcmp(f[0], "ins") == 0 && strcmp(f[1], "top") == 0 && nf >= 4)
        smfi_insheader(ctx, 0, f[2], f[3]);
    else if (strcmp(f[0], "ins") == 0 && strcmp(f[1], "before") == 0 && nf >= 5)
        smfi_insheader(ctx, atoi(f[2]), f[3], f[4]);
    else if (strcmp(f[0], "ins") == 0 && strcmp(f[1], "after") == 0 && nf >= 5)
        smfi_insheader(ctx, atoi(f[2]) + 1, f[3], f[4]);
    else if (strcmp(f[0], "chghdr") == 0 && nf >= 4)
        smfi_chgheader(ctx, f[1], atoi(f[2]), f[3]);
    else if (strcmp(f[0], "delhdr") == 0 && nf >= 3)
        smfi_chgheader(ctx, f[1], atoi(f[2]), NULL);
    else if (strcmp(f[0], "body") == 0 && nf >= 2)
        replace_body(ctx, f[1]);
    else if (strcmp(f[0], "bigbody") == 0 && nf >= 2)
        big_body(ctx, (size_t)atol(f[1]));
    else if (strcmp(f[0], "emptybody") == 0)
        smfi_replacebody(ctx, (unsigned char *)"", 0);
    else if (strcmp(f[0], "chgfrom") == 0 && nf >= 2)
        smfi_chgfrom(ctx, f[1], nf >= 3 ? f[2] : NULL);
    else if (strcmp(f[0], "addrcpt") == 0 && nf >= 2)
        smfi_addrcpt(ctx, f[1]);
    else if (strcmp(f[0], "addrcptpar") == 0 && nf >= 3)
        smfi_addrcpt_par(ctx, f[1], f[2]);
    else if (strcmp(f[0], "delrcpt") == 0 && nf >= 2)
        smfi_delrcpt(ctx, f[1]);
    else if (strcmp(f[0], "quar") == 0 && nf >= 2)
        smfi_quarantine(ctx, f[1]);
    else if (strcmp(f[0], "progress") == 0)
        smfi_progress(ctx);
}

static sfsistat x_eom(SMFICTX *ctx) {
    char edits[4096];
    sfsistat status;
    if (plan_item(ctx, "edits", edits, sizeof edits)) {
        char *edit = edits;
        while (edit != NULL) {
            char *next = strchr(edit, '|');
            if (next != NULL)
                *next++ = '\0';
            apply_edit(ctx, edit);
            edit = next;
        }
    }
    status = decide(ctx, "eom", 0, "eom");
    reset(ctx);
    return status;
}

static sfsistat x_abort(SMFICTX *ctx) {
    reset(ctx);
    return SMFIS_CONTINUE;
}

static sfsistat x_close(SMFICTX *ctx) {
    free(smfi_getpriv(ctx));
    smfi_setpriv(ctx, NULL);
    return SMFIS_CONTINUE;
}

static sfsistat x_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1, unsigned long f2,
                            unsigned long f3, unsigned long *pf0, unsigned long *pf1,
                            unsigned long *pf2, unsigned long *pf3) {
    unsigned long actions = 0xFF; /* every edit but SETSYMLIST */
    unsigned long protocol = 0;
    (void)f2;
    (void)f3;
    switch (config) {
    case NOREPLY:
        protocol = SMFIP_NR_HDR | SMFIP_NR_EOH | SMFIP_NR_BODY;
        break;
    case NR_ALL:
        protocol = SMFIP_NR_CONN | SMFIP_NR_HELO | SMFIP_NR_MAIL | SMFIP_NR_RCPT |
                   SMFIP_NR_DATA | SMFIP_NR_UNKN | SMFIP_NR_HDR | SMFIP_NR_EOH |
                   SMFIP_NR_BODY;
        break;
    case OPTIONS:
        protocol = (SMFIP_RCPT_REJ | SMFIP_HDR_LEADSPC) & f1;
        actions |= SMFIF_SETSYMLIST;
        smfi_setsymlist(ctx, SMFIM_CONNECT, "j {plan}");
        smfi_setsymlist(ctx, SMFIM_HELO, "{cipher}");
        break;
    case MACROS:
        actions |= SMFIF_SETSYMLIST;
        smfi_setsymlist(ctx, SMFIM_ENVRCPT, "{rcpt_addr}");
        smfi_setsymlist(ctx, SMFIM_EOM, "{msg_id}");
        break;
    default:
        break;
    }
    /* A body callback that answers may skip: ask for SKIP where the MTA has it. */
    if (config != NOREPLY && config != NR_ALL)
        protocol |= f1 & SMFIP_SKIP;
    *pf0 = f0 & actions;
    *pf1 = protocol;
    *pf2 = 0;
    *pf3 = 0;
    return SMFIS_CONTINUE;
}

int main(int argc, char **argv) {
    struct smfiDesc desc;
    const char *names[] = {"full", "noreply", "nr_all", "minimal", "options", "macros"};
    int found = 0;
    if (argc != 3) {
        fprintf(stderr, "usage: %s SOCKET CONFIG\n", argv[0]);
        return 2;
    }
    for (int i = 0; i < 6; i++) {
        if (strcmp(argv[2], names[i]) == 0) {
            config = (enum config)i;
            found = 1;
        }
    }
    if (!found) {
        fprintf(stderr, "unknown config %s\n", argv[2]);
        return 2;
    }
    memset(&desc, 0, sizeof desc);
    desc.xxfi_name = "diff";
    desc.xxfi_version = SMFI_VERSION;
    desc.xxfi_eom = x_eom;
    desc.xxfi_abort = x_abort;
    desc.xxfi_close = x_close;
    if (config == MINIMAL) {
        desc.xxfi_flags = SMFIF_ADDHDRS | SMFIF_CHGHDRS;
    } else {
        desc.xxfi_flags = 0;
        desc.xxfi_connect = x_connect;
        desc.xxfi_helo = x_helo;
        desc.xxfi_envfrom = x_envfrom;
        desc.xxfi_envrcpt = x_envrcpt;
        desc.xxfi_data = x_data;
        desc.xxfi_header = x_header;
        desc.xxfi_eoh = x_eoh;
        desc.xxfi_body = x_body;
        desc.xxfi_unknown = x_unknown;
        desc.xxfi_negotiate = x_negotiate;
    }
    if (smfi_setconn((char *)argv[1]) != MI_SUCCESS || smfi_register(desc) != MI_SUCCESS ||
        smfi_opensocket(1) != MI_SUCCESS) {
        fprintf(stderr, "diff_milter: cannot listen on %s\n", argv[1]);
        return 1;
    }
    printf("listening\n");
    fflush(stdout);
    return smfi_main() == MI_SUCCESS ? 0 : 1;
}
