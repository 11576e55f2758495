/*
 * The benchmark's app: a line protocol that adds next to nothing, so the figures are the
 * servers'. Small when idle (the pattern is made on first use), so that thousands of them fit.
 *
 *   bench-app [starttls|plain [CPUFILE]]
 *
 * starttls uses UCSPI-TLS on STARTTLS (fds from SSLCTLFD, SSLREADFD, SSLWRITEFD); plain keeps
 * talking on fds 0/1 (implicit TLS, stunnel, hitch, the floors). With CPUFILE, the app appends
 * its own CPU time in microseconds (user + system) as one line at exit, so that the bench can
 * take the apps' share out of what a launcher's reaped children cost.
 *
 *   banner       "220 bench ppid=N pid=M" (N: the helper, whose memory is measured; M: the app)
 *   STARTTLS     "220 go", then TLS (starttls mode) or nothing (plain)
 *   PING         "250 pong"
 *   SEND n       n bytes of the pattern
 *   RECV n       reads n bytes, compares them with the pattern: "250 ok" or "554 bad"
 *   SERIAL       "250 serial=HEX pid=M": SSL_SERVER_M_SERIAL, from the `Y` reply (starttls mode with
 *                BENCH_APP_VARS set) or the environment (implicit TLS); empty without
 *   EHLO, MAIL, RCPT, DATA, RSET, NOOP: just enough SMTP for swaks and openssl s_client
 *                -starttls smtp (DATA reads to the "." line)
 *   QUIT / EOF   "221 bye" / nothing, and exit 0
 *
 * The pattern: byte k of a stream is pattern[k % PATTERN_LEN], pattern from xorshift32
 * seeded with PATTERN_SEED; bench/pattern.ts makes the same bytes.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#define PATTERN_LEN 1000003
#define PATTERN_SEED 2463534242u
#define CHUNK (128 * 1024)

static unsigned char pattern[2 * PATTERN_LEN];
static unsigned char inbuf[256 * 1024];
static size_t in_start, in_end;
static int in_fd = 0, out_fd = 1;
static int pattern_made;
static const char *cpu_file;
static char serial[128];

static void make_pattern(void) {
  if (pattern_made) return;
  pattern_made = 1;
  unsigned x = PATTERN_SEED;
  for (size_t i = 0; i < PATTERN_LEN; i++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    pattern[i] = pattern[i + PATTERN_LEN] = (unsigned char)(x >> 24);
  }
}

static void put(const void *p, size_t n) {
  const char *c = p;
  while (n > 0) {
    ssize_t w = write(out_fd, c, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      exit(0); /* the other end is gone */
    }
    c += w;
    n -= (size_t)w;
  }
}

static void say(const char *s) { put(s, strlen(s)); }

static int fill(void) {
  if (in_start == in_end) in_start = in_end = 0;
  for (;;) {
    ssize_t r = read(in_fd, inbuf + in_end, sizeof inbuf - in_end);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return 0;
    in_end += (size_t)r;
    return 1;
  }
}

/* One line without its CR LF; 0 at EOF. */
static int get_line(char *line, size_t size) {
  for (;;) {
    unsigned char *nl = memchr(inbuf + in_start, '\n', in_end - in_start);
    if (nl != NULL) {
      size_t n = (size_t)(nl - (inbuf + in_start));
      size_t keep = n < size - 1 ? n : size - 1;
      memcpy(line, inbuf + in_start, keep);
      if (keep > 0 && line[keep - 1] == '\r') keep--;
      line[keep] = 0;
      in_start += n + 1;
      return 1;
    }
    if (in_end == sizeof inbuf) {
      if (in_start == 0) return 0; /* a line longer than the buffer: not ours */
      memmove(inbuf, inbuf + in_start, in_end - in_start);
      in_end -= in_start;
      in_start = 0;
    }
    if (!fill()) return 0;
  }
}

static void send_bytes(unsigned long long n) {
  unsigned long long off = 0;
  make_pattern();
  while (off < n) {
    size_t pos = (size_t)(off % PATTERN_LEN);
    size_t len = n - off < CHUNK ? (size_t)(n - off) : CHUNK;
    put(pattern + pos, len);
    off += len;
  }
}

static int recv_bytes(unsigned long long n) {
  unsigned long long off = 0;
  make_pattern();
  int good = 1;
  while (off < n) {
    if (in_start == in_end && !fill()) return 0;
    size_t len = in_end - in_start;
    if (len > n - off) len = (size_t)(n - off);
    if (len > PATTERN_LEN) len = PATTERN_LEN;
    if (memcmp(inbuf + in_start, pattern + off % PATTERN_LEN, len) != 0) good = 0;
    in_start += len;
    off += len;
  }
  return good;
}

static void start_tls(void) {
  const char *ctl = getenv("SSLCTLFD"), *rd = getenv("SSLREADFD"), *wr = getenv("SSLWRITEFD");
  if (ctl == NULL || rd == NULL || wr == NULL) exit(111);
  int c = atoi(ctl);
  /* With BENCH_APP_VARS, `Y`: the reply (VAR=value NUL ..., NUL) gives the serial. */
  int vars = getenv("BENCH_APP_VARS") != NULL;
  char reply[16384];
  size_t got = 0;
  while (write(c, vars ? "Y" : "y", 1) != 1)
    if (errno != EINTR) exit(111);
  for (;;) {
    char b[512];
    ssize_t r = read(c, b, sizeof b);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    size_t keep = (size_t)r < sizeof reply - 1 - got ? (size_t)r : sizeof reply - 1 - got;
    memcpy(reply + got, b, keep);
    got += keep;
  }
  close(c);
  reply[got] = 0;
  for (size_t at = 0; at < got; at += strlen(reply + at) + 1)
    if (strncmp(reply + at, "SSL_SERVER_M_SERIAL=", 20) == 0) snprintf(serial, sizeof serial, "%s", reply + at + 20);
  in_fd = atoi(rd);
  out_fd = atoi(wr);
  in_start = in_end = 0;
}

static void report_cpu(void) {
  struct rusage u;
  char buf[32];
  if (getrusage(RUSAGE_SELF, &u) != 0) return;
  long long us = (long long)(u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1000000 + u.ru_utime.tv_usec + u.ru_stime.tv_usec;
  int n = snprintf(buf, sizeof buf, "%lld\n", us);
  int fd = open(cpu_file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return;
  if (write(fd, buf, (size_t)n) != n) {
    /* a line short or missing: the bench sees the count differ and prints no figure */
  }
  close(fd);
}

int main(int argc, char **argv) {
  char line[256], buf[192];
  int starttls = argc > 1 && strcmp(argv[1], "starttls") == 0;
  if (argc > 2) {
    cpu_file = argv[2];
    atexit(report_cpu);
  }
  signal(SIGPIPE, SIG_IGN);
  snprintf(buf, sizeof buf, "220 bench ppid=%ld pid=%ld\r\n", (long)getppid(), (long)getpid());
  say(buf);
  while (get_line(line, sizeof line)) {
    if (strcmp(line, "STARTTLS") == 0) {
      say("220 go\r\n");
      if (starttls) start_tls();
    } else if (strcmp(line, "PING") == 0) {
      say("250 pong\r\n");
    } else if (strncmp(line, "SEND ", 5) == 0) {
      send_bytes(strtoull(line + 5, NULL, 10));
    } else if (strncmp(line, "RECV ", 5) == 0) {
      say(recv_bytes(strtoull(line + 5, NULL, 10)) ? "250 ok\r\n" : "554 bad\r\n");
    } else if (strcmp(line, "SERIAL") == 0) {
      const char *env = getenv("SSL_SERVER_M_SERIAL");
      snprintf(buf, sizeof buf, "250 serial=%s pid=%ld\r\n", serial[0] != 0 ? serial : env != NULL ? env : "", (long)getpid());
      say(buf);
    } else if (strncmp(line, "EHLO", 4) == 0) {
      say(starttls && out_fd == 1 ? "250-bench\r\n250 STARTTLS\r\n" : "250 bench\r\n");
    } else if (strncmp(line, "MAIL", 4) == 0 || strncmp(line, "RCPT", 4) == 0 || strcmp(line, "RSET") == 0 || strcmp(line, "NOOP") == 0) {
      say("250 ok\r\n");
    } else if (strcmp(line, "DATA") == 0) {
      say("354 go\r\n");
      while (get_line(line, sizeof line) && strcmp(line, ".") != 0) {
      }
      say("250 queued\r\n");
    } else if (strcmp(line, "QUIT") == 0) {
      say("221 bye\r\n");
      return 0;
    } else {
      say("500 what\r\n");
    }
  }
  return 0;
}
