/*
 * tests/milter/test_milter.c — a milter on the real libmilter, driven by
 * the messages it filters, for Ringmail's milter client tests.
 *
 * Usage: test_milter -p inet:PORT@127.0.0.1 | -p unix:/path [-n]
 * Prints "ready PORT\n" on stdout once listening (PORT is 0 for unix
 * sockets; inet:0 picks a free port).
 *
 * Per message, under test control:
 *   X-Test-Action: reject|tempfail|discard|quarantine|replycode|accept|continue
 *       the end-of-message reply (replycode: 550 5.7.9 custom text;
 *       quarantine: reason "held by test")
 *   X-Test-Mod: comma-separated list of end-of-message modifications:
 *       addheader   X-Milter: added
 *       insheader   X-Milter-First: inserted, at index 0
 *       chgheader   Subject (1st) -> "changed subject"
 *       delheader   deletes the 1st X-Remove-Me
 *       addrcpt     <added@example.net>
 *       addrcptpar  <added-par@example.net> NOTIFY=NEVER
 *       delrcpt     the first recipient
 *       replbody    "replaced body\r\n"
 *       chgfrom     <changed@example.test>
 *       progress    three SMFIR_PROGRESS, 700 ms apart
 *       report      X-Milter-Report: what the milter saw (macros, events)
 *   X-Test-Stall: N   sleep N seconds in eom
 *   X-Test-Crash: 1   _exit(1) in eom
 *   recipient "reject-*"   550 5.1.1 at envrcpt
 *   sender "reject-*"      SMFIS_REJECT at envfrom
 *   sender "tempfail-*"    451 4.7.2 sender deferred at envfrom
 * With -n the milter declines HELO and the body, asks for no replies to
 * headers, and restricts the connect macros to "j {daemon_name}".
 */
#include <libmilter/mfapi.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int negotiate_subset = 0;

struct test_priv {
  char connect_host[256];
  char family;
  unsigned port;
  char macro_j[256], macro_underscore[512], macro_daemon[256], macro_if[128];
  char macro_client_addr[128], macro_client_name[256];
  char macro_i[128], macro_auth[256], macro_mail_addr[512], macro_rcpt_addr[512];
  char helo[256];
  char from[512], from_args[512];
  char rcpts[2048], rcpt_args[512];
  char first_rcpt[512];
  char subject[1024];
  char action[64];
  char mods[512];
  int stall, crash, headers, chunks;
  unsigned long body_bytes, max_chunk;
};

static struct test_priv *priv_of(SMFICTX *ctx) {
  struct test_priv *p = smfi_getpriv(ctx);
  if (p == NULL) {
    p = calloc(1, sizeof(*p));
    if (p == NULL) return NULL;
    strcpy(p->helo, "-");
    p->family = '-';
    smfi_setpriv(ctx, p);
  }
  return p;
}

static void copy(char *dst, size_t size, const char *src) {
  snprintf(dst, size, "%s", src != NULL ? src : "-");
}

static void append(char *dst, size_t size, const char *sep, const char *src) {
  size_t used = strlen(dst);
  if (used >= size - 1) return;
  snprintf(dst + used, size - used, "%s%s", used > 0 ? sep : "", src);
}

static void reset_message(struct test_priv *p) {
  p->from[0] = p->from_args[0] = p->rcpts[0] = p->rcpt_args[0] = p->first_rcpt[0] = 0;
  p->subject[0] = p->action[0] = p->mods[0] = 0;
  p->stall = p->crash = p->headers = p->chunks = 0;
  p->body_bytes = p->max_chunk = 0;
  strcpy(p->macro_rcpt_addr, "-");
}

static sfsistat on_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1, unsigned long f2,
                             unsigned long f3, unsigned long *pf0, unsigned long *pf1,
                             unsigned long *pf2, unsigned long *pf3) {
  (void)f2;
  (void)f3;
  unsigned long actions = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_CHGBODY | SMFIF_ADDRCPT |
                          SMFIF_ADDRCPT_PAR | SMFIF_DELRCPT | SMFIF_QUARANTINE | SMFIF_CHGFROM;
  unsigned long protocol = 0;
  if (negotiate_subset) {
    actions |= SMFIF_SETSYMLIST;
    protocol = SMFIP_NOHELO | SMFIP_NOBODY | SMFIP_NR_HDR;
  }
  if ((f0 & actions) != actions || (f1 & protocol) != protocol) return SMFIS_REJECT;
  *pf0 = actions;
  *pf1 = protocol;
  *pf2 = 0;
  *pf3 = 0;
  if (negotiate_subset && smfi_setsymlist(ctx, SMFIM_CONNECT, "j {daemon_name}") != MI_SUCCESS) {
    return SMFIS_REJECT;
  }
  return SMFIS_CONTINUE;
}

static sfsistat on_connect(SMFICTX *ctx, char *hostname, _SOCK_ADDR *addr) {
  struct test_priv *p = priv_of(ctx);
  if (p == NULL) return SMFIS_TEMPFAIL;
  copy(p->connect_host, sizeof(p->connect_host), hostname);
  p->family = 'U';
  if (addr != NULL && addr->sa_family == AF_INET) {
    p->family = '4';
    p->port = ntohs(((struct sockaddr_in *)addr)->sin_port);
  } else if (addr != NULL && addr->sa_family == AF_INET6) {
    p->family = '6';
    p->port = ntohs(((struct sockaddr_in6 *)addr)->sin6_port);
  }
  copy(p->macro_j, sizeof(p->macro_j), smfi_getsymval(ctx, "j"));
  copy(p->macro_underscore, sizeof(p->macro_underscore), smfi_getsymval(ctx, "_"));
  copy(p->macro_daemon, sizeof(p->macro_daemon), smfi_getsymval(ctx, "{daemon_name}"));
  copy(p->macro_if, sizeof(p->macro_if), smfi_getsymval(ctx, "{if_addr}"));
  copy(p->macro_client_addr, sizeof(p->macro_client_addr), smfi_getsymval(ctx, "{client_addr}"));
  copy(p->macro_client_name, sizeof(p->macro_client_name), smfi_getsymval(ctx, "{client_name}"));
  return SMFIS_CONTINUE;
}

static sfsistat on_helo(SMFICTX *ctx, char *helo) {
  struct test_priv *p = priv_of(ctx);
  if (p == NULL) return SMFIS_TEMPFAIL;
  copy(p->helo, sizeof(p->helo), helo);
  return SMFIS_CONTINUE;
}

static sfsistat on_envfrom(SMFICTX *ctx, char **argv) {
  struct test_priv *p = priv_of(ctx);
  if (p == NULL) return SMFIS_TEMPFAIL;
  reset_message(p);
  copy(p->from, sizeof(p->from), argv[0]);
  for (int i = 1; argv[i] != NULL; ++i) append(p->from_args, sizeof(p->from_args), " ", argv[i]);
  copy(p->macro_i, sizeof(p->macro_i), smfi_getsymval(ctx, "i"));
  copy(p->macro_auth, sizeof(p->macro_auth), smfi_getsymval(ctx, "{auth_authen}"));
  copy(p->macro_mail_addr, sizeof(p->macro_mail_addr), smfi_getsymval(ctx, "{mail_addr}"));
  if (strncmp(argv[0], "<reject-", 8) == 0) return SMFIS_REJECT;
  if (strncmp(argv[0], "<tempfail-", 10) == 0) {
    smfi_setreply(ctx, "451", "4.7.2", "sender deferred");
    return SMFIS_TEMPFAIL;
  }
  return SMFIS_CONTINUE;
}

static sfsistat on_envrcpt(SMFICTX *ctx, char **argv) {
  struct test_priv *p = priv_of(ctx);
  if (p == NULL) return SMFIS_TEMPFAIL;
  if (strncmp(argv[0], "<reject-", 8) == 0) {
    smfi_setreply(ctx, "550", "5.1.1", "no such user here");
    return SMFIS_REJECT;
  }
  if (p->first_rcpt[0] == 0) {
    copy(p->first_rcpt, sizeof(p->first_rcpt), argv[0]);
    copy(p->macro_rcpt_addr, sizeof(p->macro_rcpt_addr), smfi_getsymval(ctx, "{rcpt_addr}"));
  }
  append(p->rcpts, sizeof(p->rcpts), ",", argv[0]);
  for (int i = 1; argv[i] != NULL; ++i) append(p->rcpt_args, sizeof(p->rcpt_args), " ", argv[i]);
  return SMFIS_CONTINUE;
}

static sfsistat on_header(SMFICTX *ctx, char *name, char *value) {
  struct test_priv *p = priv_of(ctx);
  if (p == NULL) return SMFIS_TEMPFAIL;
  p->headers++;
  if (strcasecmp(name, "X-Test-Action") == 0) copy(p->action, sizeof(p->action), value);
  if (strcasecmp(name, "X-Test-Mod") == 0) copy(p->mods, sizeof(p->mods), value);
  if (strcasecmp(name, "X-Test-Stall") == 0) p->stall = atoi(value);
  if (strcasecmp(name, "X-Test-Crash") == 0) p->crash = atoi(value);
  if (strcasecmp(name, "Subject") == 0 && p->subject[0] == 0) {
    /* Escape line breaks so that the report stays one header line. */
    size_t out = 0;
    for (const char *c = value; *c != 0 && out + 3 < sizeof(p->subject); ++c) {
      if (*c == '\n') {
        p->subject[out++] = '\\';
        p->subject[out++] = 'n';
      } else if (*c == '\r') {
        p->subject[out++] = '\\';
        p->subject[out++] = 'r';
      } else if (*c == '\t') {
        p->subject[out++] = '\\';
        p->subject[out++] = 't';
      } else {
        p->subject[out++] = *c;
      }
    }
    p->subject[out] = 0;
  }
  return negotiate_subset ? SMFIS_NOREPLY : SMFIS_CONTINUE;
}

static sfsistat on_body(SMFICTX *ctx, unsigned char *chunk, size_t length) {
  (void)chunk;
  struct test_priv *p = priv_of(ctx);
  if (p == NULL) return SMFIS_TEMPFAIL;
  p->chunks++;
  p->body_bytes += length;
  if (length > p->max_chunk) p->max_chunk = length;
  return SMFIS_CONTINUE;
}

static int has_mod(const struct test_priv *p, const char *mod) {
  size_t n = strlen(mod);
  const char *s = p->mods;
  while (*s != 0) {
    while (*s == ' ' || *s == ',') ++s;
    if (strncmp(s, mod, n) == 0 && (s[n] == 0 || s[n] == ',' || s[n] == ' ')) return 1;
    while (*s != 0 && *s != ',') ++s;
  }
  return 0;
}

static sfsistat on_eom(SMFICTX *ctx) {
  struct test_priv *p = priv_of(ctx);
  if (p == NULL) return SMFIS_TEMPFAIL;
  if (p->crash) _exit(1);
  if (p->stall > 0) sleep((unsigned)p->stall);
  if (has_mod(p, "progress")) {
    for (int i = 0; i < 3; ++i) {
      usleep(700 * 1000);
      smfi_progress(ctx);
    }
  }
  if (has_mod(p, "addheader")) smfi_addheader(ctx, "X-Milter", "added");
  if (has_mod(p, "insheader")) smfi_insheader(ctx, 0, "X-Milter-First", "inserted");
  if (has_mod(p, "chgheader")) smfi_chgheader(ctx, "Subject", 1, "changed subject");
  if (has_mod(p, "delheader")) smfi_chgheader(ctx, "X-Remove-Me", 1, NULL);
  if (has_mod(p, "addrcpt")) smfi_addrcpt(ctx, "<added@example.net>");
  if (has_mod(p, "addrcptpar")) smfi_addrcpt_par(ctx, "<added-par@example.net>", "NOTIFY=NEVER");
  if (has_mod(p, "delrcpt") && p->first_rcpt[0] != 0) smfi_delrcpt(ctx, p->first_rcpt);
  if (has_mod(p, "replbody")) {
    static unsigned char body[] = "replaced body\r\n";
    smfi_replacebody(ctx, body, (int)strlen((char *)body));
  }
  if (has_mod(p, "chgfrom")) smfi_chgfrom(ctx, "<changed@example.test>", NULL);
  if (has_mod(p, "report")) {
    static __thread char report[16384];
    int n = snprintf(report, sizeof(report),
             "host=%s family=%c port=%u helo=%s from=%s from_args=[%s] rcpts=%s rcpt_args=[%s] "
             "j=%s _=[%s] daemon_name=%s if_addr=%s client_addr=%s client_name=%s i=%s "
             "auth_authen=%s mail_addr=%s rcpt_addr=%s headers=%d subject=[%s] chunks=%d "
             "body_bytes=%lu max_chunk=%lu",
             p->connect_host, p->family, p->port, p->helo, p->from, p->from_args, p->rcpts,
             p->rcpt_args, p->macro_j, p->macro_underscore, p->macro_daemon, p->macro_if,
             p->macro_client_addr, p->macro_client_name, p->macro_i, p->macro_auth,
             p->macro_mail_addr, p->macro_rcpt_addr, p->headers, p->subject, p->chunks,
             p->body_bytes, p->max_chunk);
    if (n < 0 || (size_t)n >= sizeof(report)) return SMFIS_TEMPFAIL;
    smfi_addheader(ctx, "X-Milter-Report", report);
  }
  const char *action = p->action;
  if (strcmp(action, "reject") == 0) return SMFIS_REJECT;
  if (strcmp(action, "tempfail") == 0) return SMFIS_TEMPFAIL;
  if (strcmp(action, "discard") == 0) return SMFIS_DISCARD;
  if (strcmp(action, "accept") == 0) return SMFIS_ACCEPT;
  if (strcmp(action, "quarantine") == 0) {
    smfi_quarantine(ctx, "held by test");
    return SMFIS_CONTINUE;
  }
  if (strcmp(action, "replycode") == 0) {
    smfi_setreply(ctx, "550", "5.7.9", "custom text");
    return SMFIS_REJECT;
  }
  return SMFIS_CONTINUE;
}

static sfsistat on_abort(SMFICTX *ctx) {
  struct test_priv *p = smfi_getpriv(ctx);
  if (p != NULL) reset_message(p);
  return SMFIS_CONTINUE;
}

static sfsistat on_close(SMFICTX *ctx) {
  free(smfi_getpriv(ctx));
  smfi_setpriv(ctx, NULL);
  return SMFIS_CONTINUE;
}

static struct smfiDesc description = {
    "ringmail-test-milter", SMFI_VERSION,
    SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_CHGBODY | SMFIF_ADDRCPT | SMFIF_ADDRCPT_PAR |
        SMFIF_DELRCPT | SMFIF_QUARANTINE | SMFIF_CHGFROM | SMFIF_SETSYMLIST,
    on_connect, on_helo, on_envfrom, on_envrcpt, on_header, NULL /* eoh */, on_body, on_eom,
    on_abort, on_close, NULL /* unknown */, NULL /* data */, on_negotiate};

/* The port libmilter bound, found among our listening sockets. */
static unsigned listening_port(void) {
  for (int fd = 3; fd < 1024; ++fd) {
    int listening = 0;
    socklen_t len = sizeof(listening);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening) continue;
    struct sockaddr_storage addr;
    socklen_t alen = sizeof(addr);
    if (getsockname(fd, (struct sockaddr *)&addr, &alen) != 0) continue;
    if (addr.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&addr)->sin_port);
    if (addr.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&addr)->sin6_port);
    return 0;
  }
  return 0;
}

int main(int argc, char **argv) {
  const char *conn = NULL;
  int opt;
  while ((opt = getopt(argc, argv, "p:n")) != -1) {
    if (opt == 'p') conn = optarg;
    if (opt == 'n') negotiate_subset = 1;
  }
  if (conn == NULL) {
    fprintf(stderr, "usage: %s -p inet:PORT@127.0.0.1|unix:/path [-n]\n", argv[0]);
    return 2;
  }
  if (smfi_setconn((char *)conn) != MI_SUCCESS || smfi_register(description) != MI_SUCCESS ||
      smfi_opensocket(1) != MI_SUCCESS) {
    fprintf(stderr, "test_milter: cannot listen on %s\n", conn);
    return 1;
  }
  printf("ready %u\n", listening_port());
  fflush(stdout);
  return smfi_main() == MI_SUCCESS ? 0 : 1;
}
